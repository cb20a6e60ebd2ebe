"""rocketpy side by side with Redis Streams, NATS JetStream and RabbitMQ (issue 7).

`python -m bench.peers --quick` or `rocketpy bench compare --quick`; see compare.py.
"""
