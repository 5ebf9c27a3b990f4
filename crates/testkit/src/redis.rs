//! A real `redis-server` on a loopback port, started for one test and
//! stopped by its PID when dropped.
//!
//! The binary comes from `REDIS_SERVER` or `PATH` (`.ci/run` installs
//! Debian's `redis-server`). Where it is missing, [`RedisServer::start`]
//! returns `None` and the test says so, unless `STACKING_REQUIRE_REDIS` is
//! set (as `.ci/run` sets it): then a missing server fails the test.
//!
//! The few inspection commands the tests need (`DBSIZE`, `TTL`, `KEYS`) go
//! over a plain socket in RESP, so the tests check the server without
//! trusting the client crate under test.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{free_port, Proc};

/// A `redis-server` process on `127.0.0.1`.
#[derive(Debug)]
pub struct RedisServer {
    proc: Proc,
    port: u16,
    password: Option<String>,
}

/// The `redis-server` to run, if there is one.
fn binary() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        return Some(path.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

impl RedisServer {
    /// A server without a password; `None` (with a note on stderr) when no
    /// `redis-server` is installed and `STACKING_REQUIRE_REDIS` is unset.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// A server that requires `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Option<Self> {
        Self::start_with(Some(password))
    }

    fn start_with(password: Option<&str>) -> Option<Self> {
        let Some(bin) = binary() else {
            assert!(
                std::env::var_os("STACKING_REQUIRE_REDIS").is_none(),
                "STACKING_REQUIRE_REDIS is set but no redis-server was found (PATH or REDIS_SERVER)"
            );
            eprintln!("redis-server not found (apt-get install redis-server): Redis test not run");
            return None;
        };
        let port = free_port().expect("a free loopback port");
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--protected-mode", "yes", "--loglevel", "warning"]);
        if let Some(p) = password {
            cmd.args(["--requirepass", p]);
        }
        let proc = Proc::spawn(&mut cmd).expect("redis-server starts");
        let server = Self {
            proc,
            port,
            password: password.map(str::to_string),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.command(&["PING"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not answer PING within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// `127.0.0.1:<port>`, the original's `BUCKET_NAME` form.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Stops the server now (SIGKILL to its PID), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.proc.sigkill();
    }

    /// `CONFIG SET name value` (e.g. `maxmemory` for a full server).
    pub fn set_config(&self, name: &str, value: &str) {
        match self.command(&["CONFIG", "SET", name, value]) {
            Ok(Reply::Status) => {}
            other => panic!("CONFIG SET {name} {value}: {other:?}"),
        }
    }

    /// Keys in the database.
    pub fn key_count(&self) -> u64 {
        self.integer(&["DBSIZE"])
    }

    /// Seconds left before `key` expires (-1: no expiry, -2: no such key).
    pub fn ttl(&self, key: &str) -> i64 {
        match self.command(&["TTL", key]) {
            Ok(Reply::Integer(n)) => n,
            other => panic!("TTL {key}: {other:?}"),
        }
    }

    /// Every key (tests only: `KEYS *`).
    pub fn keys(&self) -> Vec<String> {
        match self.command(&["KEYS", "*"]) {
            Ok(Reply::Array(keys)) => keys,
            other => panic!("KEYS: {other:?}"),
        }
    }

    /// The ids of the client connections open to the server, besides the
    /// one asking (a new connection gets a new id).
    pub fn client_ids(&self) -> Vec<u64> {
        match self.command(&["CLIENT", "LIST"]) {
            Ok(Reply::Bulk(list)) => list
                .lines()
                .filter(|line| !line.contains(" cmd=client"))
                .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
                .collect(),
            other => panic!("CLIENT LIST: {other:?}"),
        }
    }

    fn integer(&self, args: &[&str]) -> u64 {
        match self.command(args) {
            Ok(Reply::Integer(n)) => n as u64,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    /// One command on a new connection (after `AUTH` when a password is set).
    fn command(&self, args: &[&str]) -> std::io::Result<Reply> {
        let stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        if let Some(p) = &self.password {
            writer.write_all(&encode(&["AUTH", p]))?;
            read_reply(&mut reader)?;
        }
        writer.write_all(&encode(args))?;
        read_reply(&mut reader)
    }
}

/// The replies the inspection commands get.
#[derive(Debug)]
enum Reply {
    Status,
    Integer(i64),
    Bulk(String),
    Array(Vec<String>),
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let line = read_line(reader)?;
    let (kind, rest) = line.split_at(1.min(line.len()));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| std::io::Error::other(format!("bad reply {line:?}")))
    };
    match kind {
        "+" => Ok(Reply::Status),
        ":" => Ok(Reply::Integer(number()?)),
        "$" => {
            // `$-1`, a nil reply, has no body to read.
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Reply::Bulk(String::new()));
            };
            let mut buf = vec![0; len + 2];
            reader.read_exact(&mut buf)?;
            buf.truncate(buf.len() - 2);
            Ok(Reply::Bulk(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" => {
            let mut items = Vec::new();
            for _ in 0..number()?.max(0) {
                let header = read_line(reader)?;
                let len: usize = header[1..]
                    .parse()
                    .map_err(|_| std::io::Error::other(format!("bad bulk {header:?}")))?;
                let mut buf = vec![0; len + 2];
                reader.read_exact(&mut buf)?;
                buf.truncate(len);
                items.push(String::from_utf8_lossy(&buf).into_owned());
            }
            Ok(Reply::Array(items))
        }
        _ => Err(std::io::Error::other(format!("redis answered {line:?}"))),
    }
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::other("connection closed"));
    }
    Ok(line.trim_end().to_string())
}
