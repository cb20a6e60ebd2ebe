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
