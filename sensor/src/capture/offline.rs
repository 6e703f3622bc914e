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

/// One capture file opened through libpcap.
pub struct OfflineCapture {
    path: PathBuf,
    cap: pcap::Capture<pcap::Offline>,
    linktype: i32,
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
        Ok(OfflineCapture {
            path: path.to_path_buf(),
            cap,
            linktype,
        })
    }

    /// The file's link type (libpcap DLT/LINKTYPE number).
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// The next frame, `Ok(None)` at the end of the file.
    // timeval's field types differ between platforms; `i64::from` is the portable spelling.
    #[allow(clippy::useless_conversion)]
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                let ts = i64::from(p.header.ts.tv_sec)
                    .saturating_mul(1_000_000)
                    .saturating_add(i64::from(p.header.ts.tv_usec));
                Ok(Some(RawPacket {
                    ts,
                    wire_len: p.header.len,
                    data: p.data,
                }))
            }
            Err(pcap::Error::NoMorePackets) => Ok(None),
            Err(source) => Err(CaptureError::Read {
                path: self.path.clone(),
                source,
            }),
        }
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
