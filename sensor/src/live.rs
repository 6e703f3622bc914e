//! The live sensor: the pipeline fed from network interfaces until SIGINT/SIGTERM, and the
//! privilege drop that comes between opening the interfaces and parsing the first packet.

use crate::capture::{LiveCapture, LiveStats, Next};
use crate::pipeline::{self, PipelineConfig, SinkMsg};
use crate::stats::RunStats;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the kernel counters are read.
const KERNEL_STATS_EVERY: Duration = Duration::from_secs(1);

/// Captures from `caps` until `stop`, feeding the pipeline; the record stream goes to `sink`.
/// The handles must be non-blocking ([`LiveCapture::into_nonblocking`]): the reader drains
/// each in turn and waits in poll(2) (100 ms at most) when all are idle, so SIGTERM and idle
/// expiry are served even when no packet comes (libpcap's own read timeout does not fire on
/// an empty TPACKET_V3 ring).
pub fn run_live<S>(
    caps: Vec<LiveCapture>,
    cfg: &PipelineConfig,
    sink: S,
    stop: &AtomicBool,
) -> (RunStats, S, Vec<String>)
where
    S: FnMut(SinkMsg) + Send,
{
    pipeline::run(cfg, sink, stop, move |reader, warnings| {
        let mut caps = caps;
        let mut kernel: Vec<LiveStats> = vec![LiveStats::default(); caps.len()];
        let mut next_stats = Instant::now();
        let mut since_housekeeping = 0u32;
        'outer: while !reader.stopping() {
            let mut got_any = false;
            for (i, cap) in caps.iter_mut().enumerate() {
                // Up to a batch from each interface in turn.
                for _ in 0..512 {
                    let link = cap.linktype();
                    match cap.next_packet() {
                        Ok(Next::Packet(p)) => {
                            got_any = true;
                            reader.on_frame(link, p.ts, p.wire_len, p.data);
                            since_housekeeping += 1;
                            if since_housekeeping >= 4096 {
                                since_housekeeping = 0;
                                reader.housekeeping();
                            }
                        }
                        Ok(Next::Idle) => break,
                        Err(e) => {
                            warnings.push(format!("error: {e}; stopping"));
                            reader.stats.capture_errors += 1;
                            break 'outer;
                        }
                    }
                }
                if Instant::now() >= next_stats {
                    kernel[i] = cap.stats();
                }
            }
            if Instant::now() >= next_stats {
                next_stats = Instant::now() + KERNEL_STATS_EVERY;
                reader.stats.kernel_received = kernel.iter().map(|k| k.received).sum();
                reader.stats.kernel_drops = kernel.iter().map(|k| k.dropped).sum();
                reader.stats.kernel_if_drops = kernel.iter().map(|k| k.if_dropped).sum();
            }
            if !got_any {
                reader.idle(wall_clock_micros());
                wait_readable(&caps, 100);
            }
        }
        for (i, cap) in caps.iter_mut().enumerate() {
            kernel[i] = cap.stats();
        }
        reader.stats.kernel_received = kernel.iter().map(|k| k.received).sum();
        reader.stats.kernel_drops = kernel.iter().map(|k| k.dropped).sum();
        reader.stats.kernel_if_drops = kernel.iter().map(|k| k.if_dropped).sum();
    })
}

fn wall_clock_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn wait_readable(caps: &[LiveCapture], timeout_ms: i32) {
    let mut fds: Vec<libc::pollfd> = caps
        .iter()
        .map(|c| libc::pollfd {
            fd: c.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs
    // for the duration of the call.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms);
    }
}

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// No such user.
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// A set*id call failed.
    #[error("dropping privileges to {user:?} failed at {step}: {source}")]
    Failed {
        /// The user.
        user: String,
        /// setgroups, setgid or setuid.
        step: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Still root afterwards.
    #[error("still running as root after dropping privileges to {0:?}")]
    StillRoot(String),
}

/// Switches the whole process (all threads started later) to `user`: supplementary groups
/// cleared, then gid, then uid. Capture handles opened before stay usable.
pub fn drop_privileges(user: &str) -> Result<(u32, u32), PrivilegeError> {
    let name = std::ffi::CString::new(user).map_err(|_| PrivilegeError::NoSuchUser(user.into()))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; it is read at once,
    // before any other call that could overwrite it, on this (still single-threaded) path.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(PrivilegeError::NoSuchUser(user.into()));
    }
    // SAFETY: `pw` is non-null and points to a valid passwd struct (see above).
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    let fail = |step: &'static str| PrivilegeError::Failed {
        user: user.into(),
        step,
        source: std::io::Error::last_os_error(),
    };
    // SAFETY: plain system calls with valid arguments; a null list with size 0 clears the
    // supplementary groups.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(fail("setgroups"));
        }
        if libc::setgid(gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(fail("setuid"));
        }
        if libc::getuid() == 0 || libc::geteuid() == 0 {
            return Err(PrivilegeError::StillRoot(user.into()));
        }
    }
    Ok((uid, gid))
}

/// Whether the process runs as root.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
