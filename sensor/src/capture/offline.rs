//! Offline capture files (pcap and pcapng), read through libpcap's offline handles (the
//! `pcap` crate).

use std::path::{Path, PathBuf};

/// A captured frame, borrowed from the capture handle until the next read.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// Capture time, µs since the epoch.
    pub ts: i64,
    /// Length on the wire.
    pub wire_len: u32,
    /// The captured bytes (at most snaplen).
    pub data: &'a [u8],
}

/// Why a capture could not be opened or read on.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// libpcap refused to open the file.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// libpcap could not open or configure a live interface.
    #[error("cannot capture on {iface}: {source}")]
    Live {
        /// The interface.
        iface: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// libpcap stopped reading (e.g. the file is truncated mid-packet).
    #[error("{path}: read stopped: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// libpcap's error.
        source: pcap::Error,
    },
}

/// Frames `mailtls read` asks [`OfflineCapture::read_chunk`] for at a time (between two
/// chunks the reader looks at the stop flag and the snapshot clock).
pub const CHUNK_FRAMES: usize = 4096;

/// One capture file opened through libpcap.
pub struct OfflineCapture {
    path: PathBuf,
    // Declared before `_stdio_buf`: the handle (and its stream) is closed first.
    cap: pcap::Capture<pcap::Offline>,
    linktype: i32,
    /// The stdio buffer of libpcap's stream (see [`bigger_stdio_buffer`]), kept alive as
    /// long as the stream.
    _stdio_buf: Option<Vec<u8>>,
}

impl OfflineCapture {
    /// Opens a pcap or pcapng file.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let cap = pcap::Capture::from_file(path).map_err(|source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let linktype = cap.get_datalink().0;
        unlock_stdio(&cap);
        let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let stdio_buf = bigger_stdio_buffer(&cap, file_len);
        Ok(OfflineCapture {
            path: path.to_path_buf(),
            cap,
            linktype,
            _stdio_buf: stdio_buf,
        })
    }

    /// The file's link type (libpcap DLT/LINKTYPE number).
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// Hands up to `max` frames to `on_packet` (fewer at the end of the file) and returns
    /// how many it handed; `Ok(0)` at the end of the file. On an error the frames read
    /// before it have been handed already.
    ///
    /// One `pcap_dispatch` per call instead of one `pcap_next_ex` per frame, which set up a
    /// one-frame read in libpcap and returned a `Result<Option<_>>` for every frame
    /// (callgrind, all-mail 20 MB: the reader thread 110 M -> 94 M instructions).
    // timeval's field types differ between platforms; `i64::from` is the portable spelling.
    #[allow(clippy::useless_conversion)]
    pub fn read_chunk(
        &mut self,
        max: usize,
        mut on_packet: impl FnMut(RawPacket<'_>),
    ) -> Result<usize, CaptureError> {
        self.cap
            .dispatch(Some(max), |p| {
                let ts = i64::from(p.header.ts.tv_sec)
                    .saturating_mul(1_000_000)
                    .saturating_add(i64::from(p.header.ts.tv_usec));
                on_packet(RawPacket {
                    ts,
                    wire_len: p.header.len,
                    data: p.data,
                });
            })
            .map_err(|source| CaptureError::Read {
                path: self.path.clone(),
                source,
            })
    }
}

/// libpcap reads offline files through stdio (`fread`). In a multi-threaded process glibc
/// takes the stream's lock on every call, which cost about as much as decoding the packet
/// (measured with perf: 12 % of all samples of `mailtls read`). Only the thread holding
/// `&mut OfflineCapture` ever reads this stream, so locking is left to the caller
/// (`__fsetlocking(FSETLOCKING_BYCALLER)`, glibc and musl).
#[cfg(target_os = "linux")]
fn unlock_stdio(cap: &pcap::Capture<pcap::Offline>) {
    extern "C" {
        fn pcap_file(p: *mut std::ffi::c_void) -> *mut libc::FILE;
        fn __fsetlocking(fp: *mut libc::FILE, kind: libc::c_int) -> libc::c_int;
    }
    const FSETLOCKING_BYCALLER: libc::c_int = 2;
    // SAFETY: `cap` is a live offline handle, so `pcap_file` returns its stream (or NULL);
    // the stream is only ever used through `&mut OfflineCapture`, from one thread at a time.
    unsafe {
        let fp = pcap_file(cap.as_ptr().cast());
        if !fp.is_null() {
            __fsetlocking(fp, FSETLOCKING_BYCALLER);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn unlock_stdio(_cap: &pcap::Capture<pcap::Offline>) {}

/// Largest stdio buffer libpcap reads a file through (smaller files get one of their size).
const STDIO_BUF: usize = 1 << 20;

/// libpcap reads a file with one `fread` per record header and one per record, through a
/// stdio buffer of the file system's block size (4 KiB): one `read(2)` every few packets,
/// a quarter of a million system calls per GB (strace), whose cost perf showed as a fifth
/// of the reader thread. A 1 MiB buffer makes that 1000 calls per GB.
///
/// The handle is already open (libpcap read the file header), so the buffer is changed on
/// a stream that was read from: glibc's `setvbuf` first syncs the stream, which for a read
/// stream on a regular file moves the file offset back over the bytes it had buffered but
/// not handed out, so nothing is lost. On a pipe, FIFO or terminal that sync cannot seek,
/// and glibc then drops the buffered bytes and still reports success (found in review:
/// `mailtls read /dev/stdin < x.pcap` lost the first records), so the buffer is only changed
/// for regular files. The buffer must outlive the stream: the caller keeps it in
/// [`OfflineCapture`], after the handle.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bigger_stdio_buffer(cap: &pcap::Capture<pcap::Offline>, file_len: u64) -> Option<Vec<u8>> {
    extern "C" {
        fn pcap_file(p: *mut std::ffi::c_void) -> *mut libc::FILE;
    }
    // SAFETY: `cap` is a live offline handle; `pcap_file` returns its stream or NULL.
    let fp = unsafe { pcap_file(cap.as_ptr().cast()) };
    if fp.is_null() || !is_regular_file(fp) {
        return None;
    }
    let size = usize::try_from(file_len)
        .unwrap_or(STDIO_BUF)
        .clamp(1 << 12, STDIO_BUF);
    // Capacity only: stdio writes the bytes before it reads them, and Rust never looks at
    // them (no zeroing of a megabyte per file).
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    // SAFETY: `fp` is the live stream of `cap`; the buffer is valid for writes of `size`
    // bytes and is kept until after the handle is closed (it is never resized, so the
    // pointer stays valid).
    let ok = unsafe { libc::setvbuf(fp, buf.as_mut_ptr().cast(), libc::_IOFBF, size) == 0 };
    // On failure the stream kept its own buffer and never saw ours.
    ok.then_some(buf)
}

/// Whether the stream reads a regular file (which can seek).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn is_regular_file(fp: *mut libc::FILE) -> bool {
    // SAFETY: `fp` is a live stream; `fstat` writes into the zeroed `stat` it is given.
    unsafe {
        let fd = libc::fileno(fp);
        let mut st: libc::stat = std::mem::zeroed();
        fd >= 0 && libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bigger_stdio_buffer(_cap: &pcap::Capture<pcap::Offline>, _file_len: u64) -> Option<Vec<u8>> {
    None
}
