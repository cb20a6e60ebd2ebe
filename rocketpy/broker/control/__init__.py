"""The broker's control process: sole owner of the metadata and its periodic services.

- persist: RocketMQ's safe write (.tmp, .bak, rename, fsync) and load with .bak fallback
- topics: TopicConfigManager (topics.json, system topics, auto-create, retry/DLQ topics)
- groups: SubscriptionGroupManager (subscriptionGroup.json)
- offsets: ConsumerOffsetManager (consumerOffset.json, QUERY_CONSUMER_OFFSET rules)
- clients: ConsumerManager, ProducerManager, RebalanceLockManager (client registry, notify, locks)
- registration: REGISTER_BROKER / UNREGISTER_BROKER with every NameServer
- server: the workers' unix socket and the handlers of the requests they forward
- process: `Control`, the Child the supervisor forks
"""
