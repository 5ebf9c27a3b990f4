//! Child processes a test or benchmark starts: each is stopped by its own
//! PID (SIGTERM on request, SIGKILL on drop), never by name.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A process we started; killed and reaped on drop if still running.
#[derive(Debug)]
pub struct Proc {
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr discarded.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        Ok(Self { child })
    }

    /// [`Proc::spawn`], with the process's output (its log) into `log`.
    pub fn spawn_logging(cmd: &mut Command, log: std::fs::File) -> std::io::Result<Self> {
        let child = cmd.stdout(log.try_clone()?).stderr(log).spawn()?;
        Ok(Self { child })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM to this process and waits up to `within` for it to exit.
    pub fn sigterm(&mut self, within: Duration) -> std::io::Result<ExitStatus> {
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !sent.success() {
            return Err(std::io::Error::other(format!("kill -TERM {pid} failed")));
        }
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("pid {pid} did not exit within {within:?} of SIGTERM"),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills this process with SIGKILL (no chance to clean up) and reaps it.
    pub fn sigkill(&mut self) -> std::io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }

    /// `VmRSS` in MiB (NaN once the process is gone).
    pub fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") / 1024.0
    }

    /// CPU time all its threads have run, so far (from each thread's
    /// `schedstat`, in nanoseconds); NaN once the process is gone.
    pub fn cpu_seconds(&self) -> f64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return f64::NAN;
        };
        let ns: u64 = tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        ns as f64 / 1e9
    }

    /// `VmHWM` (peak RSS) in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") / 1024.0
    }

    /// Proportional set size in MiB (NaN once the process is gone): each
    /// resident page divided by the number of processes mapping it. Pods of
    /// one image on a node share its code pages in the page cache, and a
    /// cgroup is charged for a page once; RSS counts a shared page in every
    /// process, PSS splits it between them.
    pub fn pss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid()))
            .ok()
            .and_then(|text| smaps_field_kib(&text, "Pss:"))
            .map_or(f64::NAN, |kib| kib as f64 / 1024.0)
    }

    /// Where the resident pages are, by mapping ([`RssByMapping`]); `None`
    /// once the process is gone.
    pub fn rss_by_mapping(&self) -> Option<RssByMapping> {
        let pid = self.pid();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
        Some(RssByMapping::from_smaps(&smaps, &exe.to_string_lossy()))
    }

    fn status_kib(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// The value in KiB of the first `field` line (`Pss:`) of smaps text.
fn smaps_field_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// A process's resident memory split by what is mapped, MiB: its own
/// binary (code, read-only data, and the pages the loader relocated), other
/// files (the shared libraries), and everything else (heap, stacks,
/// anonymous mappings). File pages are shared with every process that maps
/// the same file, which RSS does not tell apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RssByMapping {
    /// The executable's own mappings.
    pub binary_mib: f64,
    /// Mappings of other files (shared libraries).
    pub other_files_mib: f64,
    /// Heap, stacks and anonymous mappings.
    pub anonymous_mib: f64,
}

impl RssByMapping {
    /// Sums the `Rss:` lines of `/proc/PID/smaps` text by mapping;
    /// `exe` is the executable's path as the mappings name it.
    pub fn from_smaps(smaps: &str, exe: &str) -> Self {
        let mut kib = [0u64; 3];
        let mut slot = 2;
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let Some(first) = fields.next() else { continue };
            if first == "Rss:" {
                kib[slot] += fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            } else if first.contains('-')
                && first.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            {
                // A mapping's header: range, perms, offset, device, inode, path.
                let path = fields.nth(4).unwrap_or("");
                slot = if path == exe {
                    0
                } else if path.starts_with('/') {
                    1
                } else {
                    2
                };
            }
        }
        let mib = |k: u64| k as f64 / 1024.0;
        Self {
            binary_mib: mib(kib[0]),
            other_files_mib: mib(kib[1]),
            anonymous_mib: mib(kib[2]),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ports [`free_port`] has handed out in this process, and the ports of the
/// listeners [`bind_loopback`] made. The tests of one binary run in
/// parallel, and once a probe socket is closed the kernel may offer its port
/// again before the child meant to take it has bound it: a run once found
/// another test's driver on its metatrainer's port, and another the
/// metatrainer's fault proxy (a listener of the test itself) on the
/// trainer's port.
static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A loopback port that was free a moment ago and that this process has not
/// handed out before: [`bind_loopback`]'s, its listener closed.
pub fn free_port() -> std::io::Result<u16> {
    Ok(bind_loopback()?.local_addr()?.port())
}

/// A listener on a loopback port that [`free_port`] has not handed out, and
/// will not: every in-process server of the tests binds through this, so
/// that none takes a port a child is about to bind.
pub fn bind_loopback() -> std::io::Result<std::net::TcpListener> {
    // Refused listeners stay open until one is found, so that the kernel
    // offers another port each time.
    let mut refused = Vec::new();
    for _ in 0..64 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let fresh = HANDED_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port);
        if fresh {
            return Ok(listener);
        }
        refused.push(listener);
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "the kernel kept offering ports this process has handed out already",
    ))
}

/// [`bind_loopback`] for a tokio runtime.
pub fn bind_loopback_tokio() -> std::io::Result<tokio::net::TcpListener> {
    let listener = bind_loopback()?;
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}

/// Whether the gRPC health service on `127.0.0.1:port` answers SERVING.
pub async fn is_serving(port: u16) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
    else {
        return false;
    };
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let request = HealthCheckRequest {
        service: String::new(),
    };
    HealthClient::new(channel)
        .check(request)
        .await
        .is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving)
}

/// Polls `is_serving` every `every` until it is true; the time it took, or
/// an error after `within`.
pub async fn wait_serving(
    port: u16,
    within: Duration,
    every: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        if is_serving(port).await {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= within {
            return Err(format!("127.0.0.1:{port} not SERVING after {within:?}"));
        }
        tokio::time::sleep(every).await;
    }
}

/// A loopback port that accepts connections and never says anything: a
/// hung peer. Its connections are held open until the runtime ends.
pub async fn silent_peer() -> std::io::Result<std::net::SocketAddr> {
    let listener = bind_loopback_tokio()?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(addr)
}

/// Environment variables the functions read: removed from a test's command
/// so the developer's own shell cannot change what a test sees.
pub const BENCHMARK_ENV: [&str; 12] = [
    "TRANSFER_TYPE",
    "AWS_ENDPOINT_URL",
    "TrainersNum",
    "CONCURRENT_TRAINING",
    "ENABLE_TRACING",
    "KEEP_OBJECTS",
    "AWS_UNSIGNED_PAYLOAD",
    "GRPC_MAX_MESSAGE_MB",
    "MAX_SERVER_THREADS",
    "BUCKET_NAME",
    "RUST_LOG",
    "NO_COLOR",
];

/// `bin` with none of [`BENCHMARK_ENV`] set.
pub fn clean_command(bin: &str) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    for var in BENCHMARK_ENV {
        c.env_remove(var);
    }
    c
}

/// A finished command's stdout then stderr, as text.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::{smaps_field_kib, RssByMapping};

    #[test]
    fn pss_is_read_from_smaps_rollup() {
        let rollup = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss: 4096 kB\nPss: 1536 kB\nPss_Anon: 512 kB\n";
        assert_eq!(smaps_field_kib(rollup, "Pss:"), Some(1536));
        assert_eq!(smaps_field_kib(rollup, "Swap:"), None);
        // This test process: a real rollup, PSS at most RSS.
        let me = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap();
        let (rss, pss) = (
            smaps_field_kib(&me, "Rss:").unwrap(),
            smaps_field_kib(&me, "Pss:").unwrap(),
        );
        assert!(pss > 0 && pss <= rss, "{pss} {rss}");
    }

    #[test]
    fn smaps_rss_is_split_into_the_binary_other_files_and_anonymous_memory() {
        let smaps = "\
55d0c0000000-55d0c0100000 r-xp 00000000 fe:00 123 /opt/bin/stacking
Size:               1024 kB
Rss:                 512 kB
55d0c0200000-55d0c0210000 rw-p 00200000 fe:00 123 /opt/bin/stacking
Rss:                  64 kB
55d0c1000000-55d0c1400000 rw-p 00000000 00:00 0 [heap]
Rss:                2048 kB
7f0000000000-7f0000100000 r-xp 00000000 fe:00 456 /usr/lib/libc.so.6
Rss:                1024 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Rss:                 256 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
Rss:                 128 kB
";
        let split = RssByMapping::from_smaps(smaps, "/opt/bin/stacking");
        assert_eq!(
            split,
            RssByMapping {
                binary_mib: 576.0 / 1024.0,
                other_files_mib: 1.0,
                anonymous_mib: 2432.0 / 1024.0,
            }
        );
    }
}
