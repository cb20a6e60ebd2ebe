"""Every bound and default size of rocketpy, in one place, with units in the names.

Values follow Apache RocketMQ 4.9.x defaults unless a comment says otherwise
(see ../shared/reference/*.md). Relations between constants are asserted at
the bottom, so a bad edit fails at import time rather than in production.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# --- remoting protocol -------------------------------------------------------

# Whole frame including its own 4-byte length prefix
# (com.rocketmq.remoting.frameMaxLength). Longer frames close the connection.
FRAME_SIZE_MAX = 16 * MIB
FRAME_LENGTH_PREFIX_SIZE = 4
# The header length travels in the low 24 bits of the header-length word.
HEADER_SIZE_MAX = (1 << 24) - 1
# Bound on extFields entries in one header; far above anything a client sends.
EXT_FIELDS_COUNT_MAX = 1024
# Our protocol version stamp: V4_9_8 (>= 232 is needed by Java SQL92 consumers).
REMOTING_VERSION = 409
# Objects and arrays allowed in a JSON header outside strings (real headers
# have two: the header and extFields). orjson 3.8 recurses without a bound
# and a ~150k-deep array segfaults the process, so this is checked first.
JSON_HEADER_CONTAINERS_MAX = 64

# --- names and message sizes ------------------------------------------------

TOPIC_NAME_LENGTH_MAX = 127
GROUP_NAME_LENGTH_MAX = 255
PROPERTIES_SIZE_MAX = 32767            # int16 length in the stored record
MESSAGE_SIZE_MAX_DEFAULT = 4 * MIB     # maxMessageSize: body bytes
# A stored record may exceed the body limit by at most this much (topic,
# properties, fixed fields): RocketMQ's "body limit + 64 KiB".
MESSAGE_RECORD_OVERHEAD_MAX = 64 * KIB
BATCH_MESSAGES_MAX = 4096              # items in one batch body
BODY_COMPRESS_THRESHOLD_SIZE = 4 * KIB # clients compress bodies >= this
BODY_COMPRESS_LEVEL = 5

# A compressed REGISTER_BROKER body may inflate to at most this much (zip-bomb bound).
REGISTER_BROKER_BODY_INFLATED_SIZE_MAX = 64 * MIB

# --- store files --------------------------------------------------------------

PAGE_SIZE = 4096
COMMITLOG_FILE_SIZE_DEFAULT = 1 * GIB          # mapedFileSizeCommitLog
CONSUMEQUEUE_ENTRY_SIZE = 20
CONSUMEQUEUE_ENTRIES_PER_FILE_DEFAULT = 300_000  # mapedFileSizeConsumeQueue / 20
INDEX_HASH_SLOT_COUNT_DEFAULT = 5_000_000      # maxHashSlotNum
INDEX_ENTRY_COUNT_DEFAULT = 20_000_000         # maxIndexNum
INDEX_QUERY_RESULTS_MAX = 64                   # maxMsgsNumBatch
INDEX_UNIQ_QUERY_RESULTS_MAX = 32              # defaultQueryMaxNum
COMMITLOG_BLANK_SIZE_MIN = 8                   # end-of-file marker
CHECKPOINT_FILE_SIZE = 4096
# The writer zero-fills the next CommitLog file this much per idle turn (then fdatasyncs it).
COMMITLOG_WARMUP_STEP_SIZE = 4 * MIB
# Recovery starts this many files from the end (RocketMQ: the third-last).
RECOVERY_TAIL_FILE_COUNT = 3
# Abnormal recovery backs off this far from the checkpoint's minimum stamp.
RECOVERY_CHECKPOINT_SLACK_MS = 3000

# --- flushing -----------------------------------------------------------------

FLUSH_INTERVAL_COMMITLOG_MS_DEFAULT = 500
FLUSH_COMMITLOG_LEAST_PAGES_DEFAULT = 4
FLUSH_COMMITLOG_THOROUGH_INTERVAL_MS_DEFAULT = 10_000
SYNC_FLUSH_TIMEOUT_MS_DEFAULT = 5000
FLUSH_INTERVAL_CONSUMEQUEUE_MS_DEFAULT = 1000
FLUSH_CONSUMEQUEUE_LEAST_PAGES_DEFAULT = 2
FLUSH_CONSUMEQUEUE_THOROUGH_INTERVAL_MS_DEFAULT = 60_000

# --- retention and disk -------------------------------------------------------

FILE_RESERVED_TIME_HOURS_DEFAULT = 72
DELETE_WHEN_DEFAULT = "04"
DISK_MAX_USED_SPACE_RATIO_PERCENT_DEFAULT = 75
DISK_SPACE_CLEAN_FORCIBLY_RATIO_DEFAULT = 0.85
DISK_SPACE_WARNING_LEVEL_RATIO_DEFAULT = 0.90
CLEAN_RESOURCE_INTERVAL_MS_DEFAULT = 10_000
DELETE_FILES_PER_PASS_MAX = 10
DELETE_COMMITLOG_FILES_INTERVAL_MS_DEFAULT = 100
DESTROY_MAPPED_FILE_INTERVAL_FORCIBLY_MS_DEFAULT = 120_000

# --- pull ----------------------------------------------------------------------

PULL_MSG_NUMS_MAX = 1024                 # bound on maxMsgNums we honour
PULL_CONSUMEQUEUE_SCAN_BYTES_MIN = 16_000
PULL_TRANSFER_BYTES_MAX_IN_MEMORY = 256 * KIB
PULL_TRANSFER_COUNT_MAX_IN_MEMORY = 32
PULL_TRANSFER_BYTES_MAX_ON_DISK = 64 * KIB
PULL_TRANSFER_COUNT_MAX_ON_DISK = 8
PULL_SUSPEND_TIMEOUT_MS_MAX = 60_000
PULL_SUSPENDED_MAX = 65_536              # parked pulls per worker

# --- delay levels ---------------------------------------------------------------

MESSAGE_DELAY_LEVEL_DEFAULT = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"
DELAY_LEVEL_COUNT_MAX = 64

# --- broker processes and shared memory ---------------------------------------

QUEUE_TABLE_SLOTS = 65_536                 # ConsumeQueues one broker can publish offsets for
PUT_RING_CAPACITY = 64 * MIB               # per worker; bounds a put request to half of it
RESPONSE_RING_CAPACITY = 4 * MIB           # per worker, writer -> worker
HEARTBEAT_SLOTS_MAX = 64                   # children of one supervisor
SEQLOCK_READ_TIMEOUT_MS = 1000             # a seqlock odd this long has a dead writer

# --- broker internals (workers, control, writer) ------------------------------

CONTROL_REQUEST_TIMEOUT_MS = 5000  # a forwarded request control has not answered by then fails
CONTROL_RECONNECT_MIN_MS = 50
CONTROL_RECONNECT_MAX_MS = 2000
CONTROL_PENDING_MAX = 65_536  # forwarded requests in flight per worker
AUTO_CREATE_TIMEOUT_MS = 5000
CONTROL_HELLO_WAIT_S = 10.0  # accept clients only once control sent the topic table (bounded)
COMMIT_OFFSETS_FLUSH_MS = 100
WORKER_COMMIT_OFFSETS_BATCH_MAX = 256
WORKER_DRAIN_WAIT_MIN_S = 2.0
WORKER_DRAIN_WAIT_MAX_S = 10.0
CONTROL_COMMIT_OFFSETS_ENTRIES_MAX = 1_000_000  # entries in one COMMIT_OFFSETS body
CONTROL_WORKER_WRITE_BUFFER_MAX = 64 * MIB
REGISTER_PERIOD_MS_MIN = 1_000  # Java clamps to 10 s; we allow 1 s so tests run fast
REGISTER_PERIOD_MS_MAX = 60_000
REGISTER_DEBOUNCE_MS = 50
PULL_SUBSCRIPTION_CACHE_MAX = 4096
CONSUMEQUEUE_TAIL_CHECK_ENTRIES_MAX = 64
INDEX_KEY_PREFIX_CACHE_MAX = 4096
DISK_CHECK_INTERVAL_MS = 1000  # statvfs of the store's partition for the disk-full guard

# --- client SDK (RocketMQ ClientConfig / DefaultMQProducer / DefaultLitePullConsumer defaults) ----

CLIENT_POLL_NAME_SERVER_INTERVAL_MS_DEFAULT = 30_000       # pollNameServerInterval
CLIENT_HEARTBEAT_BROKER_INTERVAL_MS_DEFAULT = 30_000       # heartbeatBrokerInterval
CLIENT_PERSIST_CONSUMER_OFFSET_INTERVAL_MS_DEFAULT = 5_000  # persistConsumerOffsetInterval
CLIENT_API_TIMEOUT_MS_DEFAULT = 3_000                      # mqClientApiTimeout
CLIENT_CONNECT_TIMEOUT_MS_DEFAULT = 3_000                  # connectTimeoutMillis
CLIENT_PULL_TIME_DELAY_MS_WHEN_EXCEPTION_DEFAULT = 1_000   # pullTimeDelayMillsWhenException
CLIENT_SHUTDOWN_TIMEOUT_S = 10.0                           # bound on a blocking close()
PRODUCER_SEND_TIMEOUT_MS_DEFAULT = 3_000                   # sendMsgTimeout (all retries together)
PRODUCER_RETRY_TIMES_WHEN_SEND_FAILED_DEFAULT = 2          # retryTimesWhenSendFailed
PRODUCER_RETRY_TIMES_WHEN_SEND_ASYNC_FAILED_DEFAULT = 2    # retryTimesWhenSendAsyncFailed
PRODUCER_DEFAULT_TOPIC_QUEUE_NUMS = 4                      # defaultTopicQueueNums
PRODUCER_CHECK_THREADS_MAX = 4                             # threads answering CHECK_TRANSACTION_STATE
# MQFaultStrategy: a send that took >= LATENCY_MAX_MS[i] makes its broker unavailable for
# NOT_AVAILABLE_DURATION_MS[i]; a failed send counts as FAULT_ISOLATION_LATENCY_MS.
FAULT_LATENCY_MAX_MS = (50, 100, 550, 1_000, 2_000, 3_000, 15_000)
FAULT_NOT_AVAILABLE_DURATION_MS = (0, 0, 30_000, 60_000, 120_000, 180_000, 600_000)
FAULT_ISOLATION_LATENCY_MS = 30_000
LITE_PULL_BATCH_SIZE_DEFAULT = 10                          # pullBatchSize
LITE_PULL_THRESHOLD_FOR_ALL_DEFAULT = 10_000               # pullThresholdForAll (buffered messages)
LITE_PULL_AUTO_COMMIT_INTERVAL_MS_DEFAULT = 5_000          # autoCommitIntervalMillis
LITE_PULL_BROKER_SUSPEND_MAX_MS_DEFAULT = 20_000           # brokerSuspendMaxTimeMillis
LITE_PULL_CONSUMER_TIMEOUT_MS_WHEN_SUSPEND = 30_000        # consumerTimeoutMillisWhenSuspend
LITE_PULL_REBALANCE_INTERVAL_MS_DEFAULT = 20_000           # rebalance / topic metadata check
PULL_MSG_NUMS_PER_REQUEST_MAX = 32                         # broker answers at most 32 a pull
LITE_PULL_UNROUTED_RETRY_MS = 1_000                        # rebalance retry while a topic has no route

# --- relations checked at import -----------------------------------------------

assert FRAME_SIZE_MAX > MESSAGE_SIZE_MAX_DEFAULT + MESSAGE_RECORD_OVERHEAD_MAX
assert HEADER_SIZE_MAX < FRAME_SIZE_MAX
assert TOPIC_NAME_LENGTH_MAX <= 127, "topic length is a signed byte in the record"
assert PROPERTIES_SIZE_MAX <= 32767, "properties length is a signed short"
assert COMMITLOG_FILE_SIZE_DEFAULT % PAGE_SIZE == 0
assert COMMITLOG_FILE_SIZE_DEFAULT > MESSAGE_SIZE_MAX_DEFAULT + MESSAGE_RECORD_OVERHEAD_MAX
assert PULL_TRANSFER_COUNT_MAX_IN_MEMORY <= PULL_MSG_NUMS_MAX
assert INDEX_QUERY_RESULTS_MAX >= INDEX_UNIQ_QUERY_RESULTS_MAX
assert 0 < DISK_SPACE_CLEAN_FORCIBLY_RATIO_DEFAULT < DISK_SPACE_WARNING_LEVEL_RATIO_DEFAULT < 1
assert PUT_RING_CAPACITY // 2 > MESSAGE_SIZE_MAX_DEFAULT + MESSAGE_RECORD_OVERHEAD_MAX, "a max message must fit a put ring"
assert QUEUE_TABLE_SLOTS & (QUEUE_TABLE_SLOTS - 1) == 0
assert REGISTER_PERIOD_MS_MIN < REGISTER_PERIOD_MS_MAX
assert CONTROL_RECONNECT_MIN_MS < CONTROL_RECONNECT_MAX_MS < CONTROL_REQUEST_TIMEOUT_MS
assert WORKER_DRAIN_WAIT_MIN_S <= WORKER_DRAIN_WAIT_MAX_S
assert WORKER_COMMIT_OFFSETS_BATCH_MAX <= CONTROL_COMMIT_OFFSETS_ENTRIES_MAX

# --- operations: admin client, metrics, progress (issue 6) -----------------------

ADMIN_BODY_DEPTH_MAX = 64  # nesting of a fastjson admin body we parse
ADMIN_TIMEOUT_MS_DEFAULT = 5000  # one admin request to a broker or NameServer
ADMIN_QUERY_MESSAGES_MAX = 64  # messages one `admin query-key` prints (QUERY_MESSAGE maxNum)
ADMIN_CONSUME_MSGS_MAX = 32  # maxMsgNums of one pull of `rocketpy consume`
CONSUME_FOLLOW_POLL_MS = 500  # `rocketpy consume --follow` polls an idle topic this often
METRICS_PORT_OFFSET = 5  # metricsPort default: listenPort + this (broker 10916, NameServer 9881)
METRICS_SHIP_INTERVAL_MS = 1000  # workers and the writer ship their counters to control this often
METRICS_TOPIC_SERIES_MAX = 1024  # topics (and groups) one process reports; beyond, "_other"
METRICS_HTTP_REQUEST_SIZE_MAX = 8 * KIB  # request line + headers of a scrape
METRICS_HTTP_TIMEOUT_S = 5.0  # a scrape that has not sent its request by then is closed
METRICS_PAGECACHE_FILES_MAX = 4  # newest CommitLog files whose page-cache residency is measured
METRICS_PAGECACHE_INTERVAL_MS = 10_000  # residency is re-measured at most this often
METRICS_HTTP_SCRAPE_SIZE_MAX = 16 * MIB  # `admin broker-status` reads at most this much of an endpoint
METRICS_TPS_WINDOW_S = 600  # per-second history kept for putTps/getTps (10 s, 60 s, 600 s)
PROGRESS_INTERVAL_S = 0.5  # a terminal progress line is redrawn at most this often
PROGRESS_LOG_INTERVAL_S = 10.0  # long work logs its progress at most this often when not on a terminal
PROGRESS_STEP_BYTES = 4 * MIB  # store verify and recovery call their progress callback at most once per this many bytes

assert METRICS_TPS_WINDOW_S >= 60
# --- transactions (issue 5) -----------------------------------------------------

# One check-back pass reads at most this many half messages and op messages; the rest waits
# for the next pass (RocketMQ bounds a pass by time, 60 s; a count is deterministic).
TRANSACTION_CHECK_HALF_PER_PASS_MAX = 2000
TRANSACTION_CHECK_OP_PER_PASS_MAX = 8000
TRANSACTION_CHECK_READ_BATCH_MAX = 32          # records per read of the half or op queue (RocketMQ: 32)
TRANSACTION_CHECK_INTERVAL_MS_MIN = 100        # floor of transactionCheckInterval's timer
# An END_TRANSACTION in progress holds its half message this long at most (it normally lets go
# when its puts are answered; a worker that dies lets go at once).
TRANSACTION_END_CLAIM_TIMEOUT_MS = 60_000
# A worker's END_TRANSACTION waits this long for each of its puts (the real message, the op).
TRANSACTION_END_PUT_TIMEOUT_MS = 30_000

assert TRANSACTION_CHECK_READ_BATCH_MAX <= PULL_MSG_NUMS_MAX
assert TRANSACTION_END_PUT_TIMEOUT_MS < TRANSACTION_END_CLAIM_TIMEOUT_MS, "a claim outlives its puts"
assert len(FAULT_LATENCY_MAX_MS) == len(FAULT_NOT_AVAILABLE_DURATION_MS)
assert list(FAULT_LATENCY_MAX_MS) == sorted(FAULT_LATENCY_MAX_MS)
assert LITE_PULL_BROKER_SUSPEND_MAX_MS_DEFAULT < LITE_PULL_CONSUMER_TIMEOUT_MS_WHEN_SUSPEND
assert LITE_PULL_BROKER_SUSPEND_MAX_MS_DEFAULT <= PULL_SUSPEND_TIMEOUT_MS_MAX
# --- filtering, subscriptions, rewind (issue 5: filter) -------------------------

# SQL92 subscriptions: characters in one expression, parentheses/unary operators open at
# once, and depth of the compiled tree (parser and evaluator recurse; Python's stack is 1000).
SQL92_EXPRESSION_LENGTH_MAX = 16 * KIB
SQL92_NESTING_DEPTH_MAX = 48
SQL92_TREE_DEPTH_MAX = 128
# Compiled selectors a worker keeps, keyed by (group, topic, expression, subVersion).
SQL92_SELECTOR_CACHE_MAX = 1024
# Queues one INVOKE_BROKER_TO_RESET_OFFSET may reset (readQueueNums is at most 1024 here).
RESET_OFFSET_QUEUES_MAX = 1024
assert SQL92_NESTING_DEPTH_MAX < SQL92_TREE_DEPTH_MAX
# --- delay scheduler and control's own puts (issue 5) ----------------------------

CONTROL_PUT_RING_CAPACITY = 16 * MIB         # control -> writer (scheduler re-puts); a max message fits
CONTROL_RESPONSE_RING_CAPACITY = 1 * MIB     # writer -> control
CONTROL_PUT_TIMEOUT_MS = 10_000              # a put unanswered this long fails (the writer is stuck or gone)
SCHEDULE_IDLE_WAIT_MS = 100                  # RocketMQ's DELAY_FOR_A_WHILE: poll for new delayed messages
SCHEDULE_WAIT_MAX_MS = 1_000                 # never sleep longer than this, even when the next is far off
SCHEDULE_RETRY_WAIT_MS = 1_000               # after a failed re-put, retry that level this much later
SCHEDULE_DELIVER_BATCH_MAX = 1_000           # re-puts of one level per scheduler round (then others get a turn)
SCHEDULE_PERSIST_INTERVAL_MS = 1_000         # delayOffset.json written this often when it changed
SCHEDULE_RECONCILE_SCAN_BYTES_MAX = 1 << 30  # CommitLog bytes scanned at start for already re-put records
assert CONTROL_PUT_RING_CAPACITY // 2 > MESSAGE_SIZE_MAX_DEFAULT + MESSAGE_RECORD_OVERHEAD_MAX
assert SCHEDULE_IDLE_WAIT_MS <= SCHEDULE_WAIT_MAX_MS

# --- push consumer (DefaultMQPushConsumer / ProcessQueue / RebalanceService defaults) -----

CONSUME_THREAD_COUNT_MIN_DEFAULT = 20            # consumeThreadMin
CONSUME_THREAD_COUNT_MAX_DEFAULT = 20            # consumeThreadMax
PULL_THRESHOLD_FOR_QUEUE_MESSAGES_DEFAULT = 1000  # pullThresholdForQueue: cached messages per queue
PULL_THRESHOLD_SIZE_FOR_QUEUE_MIB_DEFAULT = 100  # pullThresholdSizeForQueue: cached body MiB per queue
CONSUME_CONCURRENTLY_MAX_SPAN_DEFAULT = 2000     # consumeConcurrentlyMaxSpan: queue offsets
CONSUME_MESSAGE_BATCH_MAX_SIZE_DEFAULT = 1       # consumeMessageBatchMaxSize: messages per listener call
CONSUME_MESSAGE_BATCH_MAX_SIZE_MAX = 1024
PULL_BATCH_SIZE_DEFAULT = 32                     # pullBatchSize: maxMsgNums of one pull
MAX_RECONSUME_TIMES_DEFAULT = 16                 # maxReconsumeTimes -1 means 16 for concurrent consumers
SUSPEND_CURRENT_QUEUE_TIME_MS_DEFAULT = 1000     # suspendCurrentQueueTimeMillis (orderly)
CONSUME_TIMEOUT_MINUTES_DEFAULT = 15             # consumeTimeout
CONSUME_TIMESTAMP_AGO_MS_DEFAULT = 30 * 60 * 1000  # consumeTimestamp defaults to half an hour ago
BROKER_SUSPEND_MAX_TIME_MS_DEFAULT = 15_000      # brokerSuspendMaxTimeMillis: long-poll hold
CONSUMER_TIMEOUT_MS_WHEN_SUSPEND_DEFAULT = 30_000  # consumerTimeoutMillisWhenSuspend: pull request timeout
PULL_DELAY_MS_WHEN_EXCEPTION = 3000              # pullTimeDelayMillsWhenException
PULL_DELAY_MS_WHEN_FLOW_CONTROL = 50             # PULL_TIME_DELAY_MILLS_WHEN_FLOW_CONTROL
PULL_DELAY_MS_WHEN_NOT_LOCKED = 3000             # an orderly queue waits this long for its lock
REBALANCE_INTERVAL_MS_DEFAULT = 20_000           # RebalanceService waitInterval
REBALANCE_LOCK_INTERVAL_MS = 20_000              # ProcessQueue.REBALANCE_LOCK_INTERVAL: lock renewal
REBALANCE_LOCK_MAX_LIVE_TIME_MS = 30_000         # ProcessQueue.REBALANCE_LOCK_MAX_LIVE_TIME
PULL_MAX_IDLE_TIME_MS = 120_000                  # ProcessQueue.PULL_MAX_IDLE_TIME
CONSUME_ORDERLY_CONTINUOUS_MS_MAX = 60_000       # MAX_TIME_CONSUME_CONTINUOUSLY
SEND_BACK_FAILED_RECONSUME_DELAY_MS = 5000       # submitConsumeRequestLater after a failed send-back
CONSUME_TIMEOUT_CLEAN_PER_PASS_MAX = 16          # expired messages sent back per queue and pass
CONSUMER_SHUTDOWN_AWAIT_MS_DEFAULT = 10_000      # graceful shutdown waits this long for listeners
CONSISTENT_HASH_VIRTUAL_NODE_COUNT_DEFAULT = 10  # AllocateMessageQueueConsistentHash()

assert CONSUME_THREAD_COUNT_MIN_DEFAULT <= CONSUME_THREAD_COUNT_MAX_DEFAULT
assert 1 <= CONSUME_MESSAGE_BATCH_MAX_SIZE_DEFAULT <= CONSUME_MESSAGE_BATCH_MAX_SIZE_MAX
assert BROKER_SUSPEND_MAX_TIME_MS_DEFAULT < CONSUMER_TIMEOUT_MS_WHEN_SUSPEND_DEFAULT, "a pull outlives its hold"
assert BROKER_SUSPEND_MAX_TIME_MS_DEFAULT <= PULL_SUSPEND_TIMEOUT_MS_MAX
assert PULL_BATCH_SIZE_DEFAULT <= PULL_MSG_NUMS_MAX
assert REBALANCE_LOCK_INTERVAL_MS < REBALANCE_LOCK_MAX_LIVE_TIME_MS, "locks are renewed before they expire"
# --- bench compare (bench/peers: rocketpy side by side with its peers) ----------
# Defaults of `rocketpy bench compare`; every step is bounded in count and in time.

BENCH_RUNS_DEFAULT = 3                         # interleaved runs per cell; figures are medians
BENCH_PIPELINE_IN_FLIGHT = 64                  # workload 1: sends awaiting their ack at once
BENCH_BATCH_MESSAGES = 32                      # workload 3: messages per batch request
BENCH_BATCH_IN_FLIGHT = 8                      # workload 3: batches awaiting their ack at once
BENCH_WARMUP_S = 0.5                           # sent before each measured produce step
BENCH_PRODUCE_S_FULL = 2.0                     # workloads 1 and 3, measured seconds per run
BENCH_PRODUCE_S_QUICK = 1.0
BENCH_ONE_IN_FLIGHT_S_FULL = 1.5               # workload 2
BENCH_ONE_IN_FLIGHT_S_QUICK = 0.5
BENCH_BACKLOG_MESSAGES_FULL = 30_000           # workload 4, backlog per run
BENCH_BACKLOG_MESSAGES_QUICK = 10_000
BENCH_HOLD_MESSAGES_FULL = 1_000_000           # workload 6: memory holding this x 1 KiB
BENCH_HOLD_MESSAGES_QUICK = 20_000
BENCH_HOLD_BODY_SIZE = 1 * KIB
BENCH_E2E_RATE_PER_S_FULL = 2000               # workload 5, fixed send rate (the 5,000/s
                                               # saturates a Python client on 2 busy cores: --e2e-rate)
BENCH_E2E_RATE_PER_S_QUICK = 1000
BENCH_E2E_S_FULL = 4.0
BENCH_E2E_S_QUICK = 1.5
BENCH_E2E_IN_FLIGHT_MAX = 256                  # sends of the fixed-rate producer not yet acked
BENCH_FILL_IN_FLIGHT = 256                     # sends in flight while filling a backlog (not measured)
BENCH_CONSUME_BATCH_MAX = 1000                 # messages per fetch / read / prefetch window
BENCH_STEP_TIMEOUT_S = 180.0                   # cap on one fill or drain
BENCH_HOLD_FILL_TIMEOUT_S = 90.0               # cap on the hold step's fill; a slower client holds fewer
BENCH_SERVER_START_TIMEOUT_S = 90.0
BENCH_SERVER_STOP_TIMEOUT_S = 30.0
BENCH_RSS_SAMPLE_INTERVAL_S = 0.25
BENCH_FULL_BUDGET_S = 14 * 60                  # the full matrix stops starting cells after this
BENCH_QUICK_BUDGET_S = 170

assert BENCH_RUNS_DEFAULT >= 3, "figures are medians of at least three runs"
assert BENCH_BATCH_MESSAGES <= BATCH_MESSAGES_MAX
assert BENCH_E2E_IN_FLIGHT_MAX >= BENCH_PIPELINE_IN_FLIGHT
