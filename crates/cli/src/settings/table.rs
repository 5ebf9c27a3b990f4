//! The rows of the settings registry: environment variables first, then
//! each command's flags. A new setting is one row here; `--help`,
//! `check-config` and `docs/configuration.md` follow from it (regenerate the
//! page with `STACKING_BLESS=1 cargo test -p stacking settings`).

use super::Role::{self, *};
use super::Setting;

const FUNCTIONS: &[Role] = &[Driver, Trainer, Reducer, Metatrainer];
const FUNCTIONS_AND_RUN: &[Role] = &[Driver, Trainer, Reducer, Metatrainer, Run];
const STORE_USERS: &[Role] = &[Driver, Trainer, Reducer, Metatrainer, Run, Gc];
const DRIVER_AND_RUN: &[Role] = &[Driver, Run];
const EVERY_COMMAND: &[Role] = &Role::ALL;

const BOOL: &str = "true or false (also 1/0, yes/no, on/off)";
const SECONDS: &str = "whole seconds, 1 to 86400";

/// Every setting the binary reads.
pub static SETTINGS: &[Setting] = &[
    // The original benchmark's environment.
    Setting::env("TRANSFER_TYPE", STORE_USERS)
        .described("INLINE (stacking run: S3 with an embedded store; gc: S3)")
        .allowed("INLINE, S3, ELASTICACHE, in any case (XDT is refused)")
        .meaning("How data moves between the functions: inside the gRPC messages (INLINE), through the S3 object store (S3) or through a Redis server (ELASTICACHE). Every function of one deployment uses the same."),
    Setting::env("BUCKET_NAME", STORE_USERS)
        .described("vhive-stacking (ELASTICACHE: 127.0.0.1:6379)")
        .allowed("an existing S3 bucket; with ELASTICACHE a Redis address: host:port, or a redis:// or rediss:// (TLS) URL")
        .meaning("Where stored data goes: the S3 bucket, or the Redis server with TRANSFER_TYPE=ELASTICACHE, as in vSwarm."),
    Setting::env("AWS_ACCESS_KEY", STORE_USERS)
        .aliases(&["AWS_ACCESS_KEY_ID"])
        .allowed("an access key id")
        .meaning("S3 access key. Required with S3 unless the function takes its credentials from a role (AWS_WEB_IDENTITY_TOKEN_FILE or container credentials)."),
    Setting::env("AWS_SECRET_KEY", STORE_USERS)
        .aliases(&["AWS_SECRET_ACCESS_KEY"])
        .allowed("the access key's secret")
        .meaning("S3 secret key, with AWS_ACCESS_KEY.")
        .secret(),
    Setting::env("AWS_SESSION_TOKEN", STORE_USERS)
        .allowed("a session token")
        .meaning("S3 session token, for temporary keys.")
        .secret(),
    Setting::env("AWS_REGION", STORE_USERS)
        .aliases(&["AWS_DEFAULT_REGION"])
        .described("us-east-1")
        .allowed("a region name")
        .meaning("The bucket's region (SigV4 signs with it)."),
    Setting::env("AWS_ENDPOINT_URL_S3", STORE_USERS)
        .aliases(&["AWS_ENDPOINT_URL"])
        .described("AWS S3")
        .allowed("an http:// or https:// URL")
        .meaning("Any S3-compatible server (MinIO, SeaweedFS, moto, ...), addressed path-style."),
    Setting::env("AWS_UNSIGNED_PAYLOAD", STORE_USERS)
        .described("auto")
        .allowed("auto, true, false")
        .meaning("Whether SigV4 signatures leave out the body's SHA-256. auto signs it only over plain http:// to another host: TLS protects it over https://, and to a loopback address it never leaves the machine."),
    Setting::env("AWS_WEB_IDENTITY_TOKEN_FILE", STORE_USERS)
        .allowed("a file path")
        .meaning("S3 credentials from a web identity (Kubernetes service account, EKS IRSA), with AWS_ROLE_ARN, instead of keys."),
    Setting::env("AWS_ROLE_ARN", STORE_USERS)
        .allowed("a role ARN")
        .meaning("The role a web identity assumes."),
    Setting::env("AWS_ROLE_SESSION_NAME", STORE_USERS)
        .described("chosen by the S3 client")
        .allowed("a session name")
        .meaning("The session name of a web identity's role."),
    Setting::env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", STORE_USERS)
        .allowed("a path on the container credentials endpoint")
        .meaning("S3 credentials from the container's role (ECS), instead of keys."),
    Setting::env("AWS_CONTAINER_CREDENTIALS_FULL_URI", STORE_USERS)
        .allowed("a URL")
        .meaning("S3 credentials from this container credentials endpoint (EKS Pod Identity), instead of keys."),
    Setting::env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", STORE_USERS)
        .allowed("a file path")
        .meaning("The token sent to AWS_CONTAINER_CREDENTIALS_FULL_URI."),
    Setting::env("REDIS_USERNAME", STORE_USERS)
        .allowed("a Redis ACL user")
        .meaning("User for Redis AUTH (ELASTICACHE), kept out of BUCKET_NAME; a URL's user@ works too."),
    Setting::env("REDIS_PASSWORD", STORE_USERS)
        .allowed("a password")
        .meaning("Password for Redis AUTH (ELASTICACHE), kept out of BUCKET_NAME; a URL's :password@ works too.")
        .secret(),
    Setting::env("ELASTICACHE_TTL_S", STORE_USERS)
        .described("3600")
        .allowed("whole seconds, 1 or more")
        .meaning("Expiry of every key a run writes to Redis, so that a run that dies before its cleanup cannot fill the cache."),
    Setting::env("ELASTICACHE_MAX_OBJECT_MB", STORE_USERS)
        .described("512")
        .allowed("1 to 512 (Redis's proto-max-bulk-len)")
        .meaning("Largest value written to Redis; a larger one is OUT_OF_RANGE before it is sent."),
    Setting::env("TrainersNum", DRIVER_AND_RUN)
        .described("-trainersNum (4)")
        .allowed("a whole number, 1 or more")
        .meaning("Trainers per invocation. Overrides -trainersNum, as in the original; stacking run's --trainers overrides it."),
    Setting::env("CONCURRENT_TRAINING", DRIVER_AND_RUN)
        .described("false")
        .allowed(BOOL)
        .meaning("Call every trainer at once instead of one after another."),
    Setting::env("ENABLE_TRACING", FUNCTIONS_AND_RUN)
        .described("false")
        .allowed(BOOL)
        .meaning("Send Zipkin spans to -zipkin (stacking run: to http://localhost:9411/api/v2/spans unless --zipkin names one)."),
    // Bounds and time limits.
    Setting::env("MAX_SERVER_THREADS", FUNCTIONS_AND_RUN)
        .described("the CPU count")
        .allowed("a whole number, 1 or more")
        .meaning("Requests a function computes at once (each may use every core for its fold fits); a worker also accepts at most twice this many open HTTP/2 streams per connection."),
    Setting::env("GRPC_MAX_MESSAGE_MB", FUNCTIONS_AND_RUN)
        .described("256")
        .allowed("a whole number, 1 or more")
        .meaning("Largest gRPC message sent or accepted. An inline message over it is OUT_OF_RANGE before it is sent."),
    Setting::env("COMPUTE_BUDGET_S", &[Driver, Trainer, Reducer, Metatrainer, Run, Gc])
        .described("120")
        .allowed(SECONDS)
        .meaning("CPU work one request may run; then its fit stops and the caller gets DEADLINE_EXCEEDED."),
    Setting::env("MEMORY_BUDGET_MB", FUNCTIONS_AND_RUN)
        .described("512")
        .allowed("a whole number, 1 or more")
        .meaning("Bytes of request messages a function holds at once: each request reserves its message's declared length before its body is read; a message larger than the whole budget is RESOURCE_EXHAUSTED."),
    Setting::env("INVOCATION_TIMEOUT_S", &[Driver, Run, Gc])
        .described("300")
        .allowed(SECONDS)
        .meaning("The driver's budget for one SayHello when the caller's grpc-timeout is not shorter."),
    Setting::env("DRAIN_TIMEOUT_S", FUNCTIONS_AND_RUN)
        .described("20")
        .allowed(SECONDS)
        .meaning("After SIGTERM, how long in-flight requests may finish before their work is stopped and the process exits."),
    Setting::env("KEEP_OBJECTS", DRIVER_AND_RUN)
        .described("false")
        .allowed(BOOL)
        .meaning("Keep each run's stored objects instead of deleting them when it ends."),
    // The process.
    Setting::env("RUST_LOG", EVERY_COMMAND)
        .described("info for the functions, warn for the other commands")
        .allowed("levels by target, e.g. debug or stacking_service=debug,info (tracing's Targets syntax)")
        .meaning("What is logged. The functions log to stdout, the other commands to stderr."),
    Setting::env("NO_COLOR", EVERY_COMMAND)
        .allowed("set to anything")
        .meaning("No colour in log lines (there is none either when the output is not a terminal)."),
    Setting::env("MALLOC_ARENA_MAX", EVERY_COMMAND)
        .described("1")
        .allowed("glibc's")
        .meaning("glibc malloc's arenas. The binary sets 1 (one heap: the blocking pool frees on other threads than it allocates on) unless this is set, and then glibc reads it."),
    Setting::env("MALLOC_MMAP_THRESHOLD_", EVERY_COMMAND)
        .described("33554432 (32 MiB)")
        .allowed("glibc's")
        .meaning("Blocks from this size on are mapped apart from the heap. The binary sets 32 MiB (per-request buffers of a few MiB reuse heap pages) unless this is set."),
    Setting::env("MALLOC_TRIM_THRESHOLD_", EVERY_COMMAND)
        .described("67108864 (64 MiB)")
        .allowed("glibc's")
        .meaning("Free memory at the heap's top kept before it is returned. The binary sets 64 MiB unless this is set."),
    // Every function.
    Setting::flag("sp", FUNCTIONS)
        .default("50051")
        .allowed("a port")
        .meaning("Port to serve gRPC on."),
    Setting::flag("host", FUNCTIONS)
        .default("0.0.0.0")
        .allowed("an IP address")
        .meaning("Address to listen on."),
    Setting::flag("zipkin", FUNCTIONS)
        .default("http://zipkin.istio-system.svc.cluster.local:9411/api/v2/spans")
        .allowed("a URL")
        .meaning("Zipkin span collector, used with ENABLE_TRACING=true."),
    // The driver.
    Setting::flag("tAddr", &[Driver])
        .default("trainer.default.svc.cluster.local:80")
        .allowed("host:port or a URL")
        .meaning("The trainers' address."),
    Setting::flag("rAddr", &[Driver])
        .default("reducer.default.svc.cluster.local:80")
        .allowed("host:port or a URL")
        .meaning("The reducer's address."),
    Setting::flag("mAddr", &[Driver])
        .default("metatrainer.default.svc.cluster.local:80")
        .allowed("host:port or a URL")
        .meaning("The metatrainer's address."),
    Setting::flag("trainersNum", &[Driver])
        .default("4")
        .allowed("a whole number, 1 or more")
        .meaning("Trainers per invocation (the TrainersNum variable overrides it)."),
    Setting::flag("dockerCompose", &[Driver])
        .allowed(BOOL)
        .meaning("Accepted for compatibility with the original; no effect."),
    // The dataset and models of the driver and of stacking run.
    Setting::flag("features", DRIVER_AND_RUN)
        .allowed("a 2-d .npy file of any float or integer dtype (converted to float64); with --labels")
        .meaning("Your own features instead of the generated dataset."),
    Setting::flag("labels", DRIVER_AND_RUN)
        .allowed("a 1-d .npy file of two distinct values (the smaller is class 0); with --features")
        .meaning("Your own labels."),
    Setting::flag("size", DRIVER_AND_RUN)
        .default("default")
        .meaning("Shape of the generated dataset by name; --n-samples and --n-features override it."),
    Setting::flag("n-samples", DRIVER_AND_RUN)
        .described("from --size: 300")
        .allowed("a whole number, 1 or more, whose dataset fits in memory")
        .meaning("Rows of the generated dataset."),
    Setting::flag("n-features", DRIVER_AND_RUN)
        .described("from --size: 1024")
        .allowed("a whole number, 1 or more, whose dataset fits in memory")
        .meaning("Columns of the generated dataset."),
    Setting::flag("seed", DRIVER_AND_RUN)
        .default("42")
        .allowed("0 to 4294967295")
        .meaning("Seed of the generated dataset (scikit-learn's random_state)."),
    Setting::flag("models", DRIVER_AND_RUN)
        .described("the benchmark's four models and LogisticRegression")
        .allowed("a JSON file {\"models\": [...], \"meta_model\": {...}} (docs/contract.md)")
        .meaning("The level-0 models (trainer i fits models[i % len]) and the meta model."),
    Setting::flag("keep-objects", DRIVER_AND_RUN)
        .meaning("Keep each run's stored objects (as KEEP_OBJECTS=true)."),
    // stacking run.
    Setting::flag("trainers", &[Run])
        .described("TrainersNum, else 4")
        .allowed("a whole number, 1 or more")
        .meaning("Trainers per invocation."),
    Setting::flag("concurrent", &[Run])
        .described("CONCURRENT_TRAINING, else false")
        .allowed(BOOL)
        .meaning("Call every trainer at once."),
    Setting::flag("transfer", &[Run])
        .described("TRANSFER_TYPE, else s3")
        .allowed("inline, s3, elasticache (any case)")
        .meaning("How data moves between the functions."),
    Setting::flag("store", &[Run])
        .described("memory with s3, redis with elasticache")
        .meaning("The store behind --transfer s3 or elasticache: memory is in this process; s3 and redis are the servers the environment names."),
    Setting::flag("zipkin", &[Run])
        .described("off (ENABLE_TRACING=true: http://localhost:9411/api/v2/spans)")
        .allowed("a URL")
        .meaning("Send every function's spans to this Zipkin collector."),
    Setting::flag("output", &[Run])
        .allowed("a directory (made if missing)")
        .meaning("Write the first invocation's model_full.msgpack, meta_predictions.npy and report.json here."),
    Setting::flag("invocations", &[Run])
        .default("1")
        .allowed("a whole number")
        .meaning("SayHello calls to make, one after another."),
    Setting::flag("json", &[Run]).meaning("Print each run's report as one JSON object per line instead of tables."),
    Setting::flag("timeline", &[Run])
        .allowed("a file ending in .svg")
        .meaning("Draw a Gantt picture of the first invocation from its spans."),
    // stacking invoke (vSwarm's invoker's flags).
    Setting::flag("endpointsFile", &[Invoke])
        .default("endpoints.json")
        .allowed("a JSON list [{\"hostname\": ...}, ...]")
        .meaning("The drivers to call, round robin."),
    Setting::flag("port", &[Invoke])
        .default("80")
        .allowed("a port")
        .meaning("Port of every endpoint."),
    Setting::flag("rps", &[Invoke])
        .default("1")
        .allowed("requests per second, above 0")
        .meaning("Target rate; requests go out on schedule whether or not earlier ones finished."),
    Setting::flag("time", &[Invoke])
        .default("5")
        .allowed("seconds, above 0")
        .meaning("How long to issue requests."),
    Setting::flag("latf", &[Invoke])
        .described("rps<observed RPS>_lat.csv, as vSwarm's invoker")
        .allowed("a file path")
        .meaning("Where the latencies of completed requests go (microseconds, one per line)."),
    Setting::flag("dbg", &[Invoke]).meaning("Log every request: number, endpoint, OK or the gRPC status, latency."),
    Setting::flag("grpcTimeout", &[Invoke])
        .default("30")
        .allowed("seconds, above 0")
        .meaning("Seconds before a request is abandoned."),
    Setting::flag("trace", &[Invoke])
        .default("false")
        .allowed(BOOL)
        .meaning("Send a client span per request to -zipkin; the functions' spans join its trace."),
    Setting::flag("zipkin", &[Invoke])
        .default("http://localhost:9411/api/v2/spans")
        .allowed("a URL")
        .meaning("Zipkin span collector, with -trace."),
    Setting::flag("profile", &[Invoke])
        .default("false")
        .allowed(BOOL)
        .meaning("Also record each invocation's duration inside the driver (from its run report) to -durf."),
    Setting::flag("durf", &[Invoke])
        .default("dur.csv")
        .allowed("a file path")
        .meaning("Where -profile writes the driver-side durations (microseconds, one per line)."),
    Setting::flag("warmup", &[Invoke])
        .default("0")
        .allowed("a whole number")
        .meaning("Requests sent, and not recorded, before the measured run."),
    Setting::flag("max-inflight", &[Invoke])
        .default("1000")
        .allowed("a whole number, 1 or more")
        .meaning("Requests in flight at most; scheduled requests beyond it are skipped and counted."),
    Setting::flag("histogram", &[Invoke])
        .allowed("a file path (SVG)")
        .meaning("Write a latency histogram here."),
    // stacking client (vSwarm's test client).
    Setting::flag("addr", &[Client])
        .default("localhost:50051")
        .allowed("host:port or a URL")
        .meaning("The function to call."),
    Setting::flag("method", &[Client])
        .default("say-hello")
        .meaning("The call to make."),
    Setting::flag("timeout", &[Client])
        .default("60")
        .allowed("seconds, above 0")
        .meaning("Seconds the call may take."),
    Setting::positional("name", &[Client])
        .default("world")
        .allowed("any text")
        .meaning("The name sent in HelloRequest."),
    // stacking health.
    Setting::flag("addr", &[Health])
        .default("127.0.0.1:50051")
        .allowed("host:port or a URL")
        .meaning("The function to ask."),
    Setting::flag("service", &[Health])
        .default("")
        .allowed("a service name; empty for the whole server")
        .meaning("The service to ask about."),
    Setting::flag("timeout", &[Health])
        .default("2")
        .allowed("seconds, above 0")
        .meaning("Seconds to wait for an answer."),
    // stacking gc.
    Setting::flag("older-than", &[Gc])
        .allowed("a duration such as 90s, 15m, 2h or 7d, at least the longest a run can last: max(INVOCATION_TIMEOUT_S, COMPUTE_BUDGET_S + 60 s) + 60 s, 6m with the defaults")
        .meaning("Delete runs untouched for this long; younger ones may still be live and are never touched."),
    Setting::flag("dry-run", &[Gc]).meaning("Only report what would be deleted."),
    // stacking check-config.
    Setting::flag("offline", &[CheckConfig])
        .meaning("Do not contact the store (credentials are still required)."),
    Setting::positional("role", &[CheckConfig])
        .allowed("driver, trainer, reducer or metatrainer")
        .meaning("The function whose configuration to check."),
    Setting::positional("args", &[CheckConfig])
        .allowed("the role's flags")
        .meaning("The role's flags, exactly as they would be passed."),
];
