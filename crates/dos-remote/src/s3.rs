//! [`S3Store`]: a [`RemoteStore`] over the `object_store` crate's S3 client, with its own
//! runtime, parallel verified multipart uploads and resumable downloads.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dos_core::remote::{
    PendingGet, RemoteError, RemoteObject, RemoteOpener, RemoteSettings, RemoteStore, UploadReceipt,
};
use futures::StreamExt;
use md5::{Digest as _, Md5};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use sha2::Sha256;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use crate::Credentials;

/// How an [`S3Store`] moves bytes.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Size of the parts of a multipart upload (at least 5 MiB, as S3 requires).
    pub part_size: usize,
    /// Parts uploaded at once (memory: this many parts).
    pub parts_in_flight: usize,
    /// Attempts of a whole download interrupted mid-stream (each resumes where it stopped).
    pub download_attempts: u32,
    /// Retries of a failed request, with exponential backoff (200 ms doubling up to 15 s, with
    /// jitter), within `retry_timeout`.
    pub max_retries: usize,
    /// No retry is started after this long since the first attempt.
    pub retry_timeout: Duration,
    /// Timeout of a request without progress.
    pub request_timeout: Duration,
    /// Also compute each part's MD5 and require the server's ETag of the part to match. Off by
    /// default: every part is sent signed with its SHA-256 (SigV4), which the server checks
    /// against the bytes it received (a mismatch is refused, `XAmzContentSHA256Mismatch`);
    /// the MD5 pass cost a fifth of the upload rate on two cores. For servers that do not
    /// check signed payloads; always on for unsigned requests (no credentials).
    pub check_part_etag: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            part_size: 16 * 1024 * 1024,
            parts_in_flight: 6,
            download_attempts: 8,
            max_retries: 30,
            retry_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(120),
            check_part_etag: false,
        }
    }
}

/// Opens [`S3Store`]s with fixed credentials and defaults.
#[derive(Debug, Clone, Default)]
pub struct S3Opener {
    /// Credentials (`None`: anonymous requests).
    pub credentials: Option<Credentials>,
    /// Endpoint when the settings name none (`AWS_ENDPOINT_URL`, say).
    pub default_endpoint: Option<String>,
    /// Region when the settings name none.
    pub default_region: Option<String>,
    /// Transfer settings.
    pub tuning: Tuning,
    /// Folder of the local range cache, used when the settings ask for one.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl RemoteOpener for S3Opener {
    fn open(&self, settings: &RemoteSettings) -> Result<Arc<dyn RemoteStore>, RemoteError> {
        let store = S3Store::open(self, settings)?;
        match (&self.cache_dir, settings.cache_bytes) {
            (Some(dir), bytes) if bytes > 0 => Ok(Arc::new(crate::cache::CachedStore::new(
                Arc::new(store),
                dir.clone(),
                bytes,
            ))),
            _ => Ok(Arc::new(store)),
        }
    }
}

/// An S3 (or compatible: Ceph RGW, MinIO) bucket and prefix.
pub struct S3Store {
    url: String,
    prefix: String,
    s3: Arc<AmazonS3>,
    rt: Runtime,
    tuning: Tuning,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Store({})", self.url)
    }
}

fn err(url: &str, name: &str, op: impl Into<String>, e: impl std::fmt::Display) -> RemoteError {
    RemoteError {
        url: url.to_string(),
        name: name.to_string(),
        op: op.into(),
        detail: e.to_string(),
        not_found: false,
    }
}

fn os_err(url: &str, name: &str, op: impl Into<String>, e: object_store::Error) -> RemoteError {
    let not_found = matches!(e, object_store::Error::NotFound { .. });
    let mut r = err(url, name, op, e);
    r.not_found = not_found;
    r
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl S3Store {
    /// Connect (no request is made) to the store `settings` name.
    pub fn open(opener: &S3Opener, settings: &RemoteSettings) -> Result<Self, RemoteError> {
        let url = settings.url.to_string();
        let endpoint = settings
            .endpoint
            .clone()
            .or_else(|| opener.default_endpoint.clone());
        let region = settings
            .region
            .clone()
            .or_else(|| opener.default_region.clone())
            .unwrap_or_else(|| "us-east-1".to_string());
        let t = &opener.tuning;
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&settings.url.bucket)
            .with_region(region)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(200),
                    max_backoff: Duration::from_secs(15),
                    base: 2.0,
                },
                max_retries: t.max_retries,
                retry_timeout: t.retry_timeout,
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(t.request_timeout)
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_allow_http(true),
            );
        if let Some(ep) = endpoint {
            // Servers other than AWS (Ceph RGW, MinIO) take path-style requests.
            b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
        }
        match &opener.credentials {
            Some(c) => {
                b = b
                    .with_access_key_id(&c.access_key_id)
                    .with_secret_access_key(&c.secret_access_key);
                if let Some(tok) = &c.session_token {
                    b = b.with_token(tok);
                }
            }
            None => b = b.with_skip_signature(true),
        }
        let s3 = b.build().map_err(|e| err(&url, "", "connect", e))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dos-s3")
            .enable_all()
            .build()
            .map_err(|e| err(&url, "", "start I/O threads", e))?;
        Ok(Self {
            url,
            prefix: settings.url.prefix.clone(),
            s3: Arc::new(s3),
            rt,
            tuning: Tuning {
                // Unsigned requests carry no payload digest for the server to check: then each
                // part's MD5 is checked against its ETag.
                check_part_etag: opener.tuning.check_part_etag || opener.credentials.is_none(),
                ..opener.tuning.clone()
            },
        })
    }

    fn path(&self, name: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(name)
        } else {
            ObjPath::from(format!("{}/{name}", self.prefix))
        }
    }

    /// The name (under the prefix) of a listed key.
    fn name_of(&self, p: &ObjPath) -> String {
        let s = p.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&format!("{}/", self.prefix))
                .unwrap_or(s)
                .to_string()
        }
    }

    /// Upload `data` as one object with a single PUT, checking the returned ETag (the MD5 of the
    /// content for a plain PUT).
    fn put_verified(&self, name: &str, data: Bytes) -> Result<(), RemoteError> {
        let md5 = hex(Md5::digest(&data).as_slice());
        let path = self.path(name);
        let r = self
            .rt
            .block_on(self.s3.put(&path, PutPayload::from_bytes(data)))
            .map_err(|e| os_err(&self.url, name, "PUT", e))?;
        let etag = r.e_tag.unwrap_or_default();
        let etag = etag.trim_matches('"');
        // An ETag that is no MD5 (server-side encryption with KMS, say) proves nothing either
        // way; the size is checked by the caller.
        if etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit()) && etag != md5 {
            return Err(err(
                &self.url,
                name,
                "PUT",
                format!("the server stored content with MD5 {etag}, we sent {md5}"),
            ));
        }
        Ok(())
    }
}

impl RemoteStore for S3Store {
    fn url(&self) -> &str {
        &self.url
    }

    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, RemoteError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.path(name);
        let op = || format!("GET bytes {}-{}", range.start, range.end - 1);
        let b = self
            .rt
            .block_on(self.s3.get_range(&path, range.clone()))
            .map_err(|e| os_err(&self.url, name, op(), e))?;
        Ok(b.to_vec())
    }

    fn start_get_range(&self, name: &str, range: Range<u64>) -> PendingGet {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let s3 = self.s3.clone();
        let path = self.path(name);
        let (url, n) = (self.url.clone(), name.to_string());
        let r = range.clone();
        self.rt.spawn(async move {
            let out = if r.is_empty() {
                Ok(Vec::new())
            } else {
                s3.get_range(&path, r.clone())
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|e| {
                        os_err(&url, &n, format!("GET bytes {}-{}", r.start, r.end - 1), e)
                    })
            };
            let _ = tx.send(out);
        });
        let (url, n) = (self.url.clone(), name.to_string());
        PendingGet::deferred(move || {
            rx.blocking_recv()
                .unwrap_or_else(|_| Err(err(&url, &n, "GET", "the request was dropped")))
        })
    }

    fn download(
        &self,
        name: &str,
        out: &mut dyn Write,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<u64, RemoteError> {
        let path = self.path(name);
        let mut done = 0u64;
        let mut total: Option<u64> = None;
        let mut attempt = 0;
        loop {
            let opts = GetOptions {
                range: (done > 0).then_some(GetRange::Offset(done)),
                ..GetOptions::default()
            };
            let res = self.rt.block_on(async {
                let r = self.s3.get_opts(&path, opts).await?;
                let size = r.meta.size;
                let mut stream = r.into_stream();
                let mut n = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => return Ok::<_, object_store::Error>((size, n, Some(e))),
                    };
                    if let Err(e) = out.write_all(&chunk) {
                        return Err(object_store::Error::Generic {
                            store: "local",
                            source: Box::new(e),
                        });
                    }
                    n += chunk.len() as u64;
                    on_bytes(chunk.len() as u64);
                }
                Ok((size, n, None))
            });
            match res {
                Ok((size, n, failure)) => {
                    let total = *total.get_or_insert(size);
                    done += n;
                    match failure {
                        None => return Ok(done),
                        // Broken after the last byte: nothing is missing.
                        Some(_) if done == total => return Ok(done),
                        Some(e) if attempt + 1 >= self.tuning.download_attempts => {
                            return Err(os_err(&self.url, name, format!("GET from {done}"), e));
                        }
                        Some(_) => {}
                    }
                }
                Err(e @ object_store::Error::Generic { store: "local", .. }) => {
                    return Err(err(&self.url, name, "write download", e));
                }
                // The request itself failed after the client's own retries: resuming a broken
                // stream is what is retried here, not that.
                Err(e) if done == 0 || attempt + 1 >= self.tuning.download_attempts => {
                    return Err(os_err(&self.url, name, format!("GET from {done}"), e));
                }
                Err(e @ object_store::Error::NotFound { .. }) => {
                    return Err(os_err(&self.url, name, "GET", e));
                }
                Err(_) => {}
            }
            attempt += 1;
            std::thread::sleep(Duration::from_millis(200 << attempt.min(6)));
        }
    }

    fn upload_file(
        &self,
        name: &str,
        file: &File,
        length: u64,
        started: &mut dyn FnMut(&str),
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<UploadReceipt, RemoteError> {
        // At least 5 MiB (S3's minimum) and few enough parts for S3's limit of 10,000.
        let part = (self.tuning.part_size.max(5 * 1024 * 1024) as u64).max(length.div_ceil(10_000));
        let mut sha = <Sha256 as sha2::Digest>::new();
        if length <= part {
            let mut buf = vec![0u8; length as usize];
            dos_core::fileio::read_exact_at(file, &mut buf, 0)
                .map_err(|e| err(&self.url, name, "read local file", e))?;
            sha2::Digest::update(&mut sha, &buf);
            self.put_verified(name, Bytes::from(buf))?;
            on_bytes(length);
        } else {
            self.upload_multipart(name, file, length, part, &mut sha, started, on_bytes)?;
        }
        let sha256 = hex(sha2::Digest::finalize(sha).as_slice());
        // The server's own account of the object.
        let stored = self
            .head(name)?
            .ok_or_else(|| err(&self.url, name, "HEAD", "the uploaded object is missing"))?;
        if stored != length {
            return Err(err(
                &self.url,
                name,
                "HEAD",
                format!("the server holds {stored} bytes, we uploaded {length}"),
            ));
        }
        Ok(UploadReceipt { length, sha256 })
    }

    fn put(&self, name: &str, data: Vec<u8>) -> Result<(), RemoteError> {
        self.put_verified(name, Bytes::from(data))
    }

    fn head(&self, name: &str) -> Result<Option<u64>, RemoteError> {
        match self.rt.block_on(self.s3.head(&self.path(name))) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(os_err(&self.url, name, "HEAD", e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<RemoteObject>, RemoteError> {
        let p = self.path(prefix.trim_end_matches('/'));
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut s = self.s3.list(Some(&p));
            while let Some(m) = s.next().await {
                let m = m.map_err(|e| os_err(&self.url, prefix, "LIST", e))?;
                let secs = u64::try_from(m.last_modified.timestamp()).unwrap_or(0);
                out.push(RemoteObject {
                    name: self.name_of(&m.location),
                    size: m.size,
                    modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
                });
            }
            Ok(out)
        })
    }

    fn delete(&self, name: &str) -> Result<(), RemoteError> {
        match self.rt.block_on(self.s3.delete(&self.path(name))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(os_err(&self.url, name, "DELETE", e)),
        }
    }

    fn abort_upload(&self, name: &str, upload_id: &str) -> Result<(), RemoteError> {
        let id = upload_id.to_string();
        match self
            .rt
            .block_on(self.s3.abort_multipart(&self.path(name), &id))
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            // An upload the server no longer knows (completed, aborted or expired).
            Err(e) if e.to_string().contains("NoSuchUpload") => Ok(()),
            Err(e) => Err(os_err(&self.url, name, "abort multipart upload", e)),
        }
    }
}

impl S3Store {
    /// Parts read in order on this thread (hashing the whole file as they go), each sent by a
    /// task of the runtime (with its MD5, which must come back as the part's ETag, when
    /// [`Tuning::check_part_etag`] is set); at most
    /// `parts_in_flight` parts in memory.
    #[allow(clippy::too_many_arguments)]
    fn upload_multipart(
        &self,
        name: &str,
        file: &File,
        length: u64,
        part: u64,
        sha: &mut Sha256,
        started: &mut dyn FnMut(&str),
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<(), RemoteError> {
        let path = self.path(name);
        let id = self
            .rt
            .block_on(self.s3.create_multipart(&path))
            .map_err(|e| os_err(&self.url, name, "create multipart upload", e))?;
        started(&id);
        let result = (|| {
            let slots = Arc::new(Semaphore::new(self.tuning.parts_in_flight.max(1)));
            let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
            let parts = length.div_ceil(part) as usize;
            let mut ids: Vec<Option<PartId>> = vec![None; parts];
            let mut received = 0;
            let mut handle_done = |r: (usize, u64, Result<PartId, RemoteError>),
                                   ids: &mut Vec<Option<PartId>>|
             -> Result<(), RemoteError> {
                let (i, n, pid) = r;
                ids[i] = Some(pid?);
                on_bytes(n);
                Ok(())
            };
            for i in 0..parts {
                let start = i as u64 * part;
                let n = part.min(length - start);
                // Wait for a free slot, collecting finished parts meanwhile.
                let permit = loop {
                    if let Ok(p) = slots.clone().try_acquire_owned() {
                        break p;
                    }
                    let r = done_rx
                        .blocking_recv()
                        .ok_or_else(|| err(&self.url, name, "upload part", "upload tasks ended"))?;
                    received += 1;
                    handle_done(r, &mut ids)?;
                };
                let mut buf = vec![0u8; n as usize];
                dos_core::fileio::read_exact_at(file, &mut buf, start)
                    .map_err(|e| err(&self.url, name, "read local file", e))?;
                sha2::Digest::update(sha, &buf);
                let (s3, path, id) = (self.s3.clone(), path.clone(), id.clone());
                let (url, nm, tx) = (self.url.clone(), name.to_string(), done_tx.clone());
                let check_etag = self.tuning.check_part_etag;
                self.rt.spawn(async move {
                    let data = Bytes::from(buf);
                    // The part's MD5 (what the server must answer as its ETag) is computed while
                    // the part is sent, not before.
                    let md5 = check_etag.then(|| {
                        let d = data.clone();
                        tokio::task::spawn_blocking(move || hex(Md5::digest(&d).as_slice()))
                    });
                    let op = format!("upload part {} (bytes {start}-{})", i + 1, start + n - 1);
                    let sent = s3
                        .put_part(&path, &id, i, PutPayload::from_bytes(data))
                        .await;
                    let md5 = match md5 {
                        Some(t) => Some(t.await.unwrap_or_default()),
                        None => None,
                    };
                    let r = sent
                        .map_err(|e| os_err(&url, &nm, op.clone(), e))
                        .and_then(|pid| {
                            let etag = pid.content_id.trim_matches('"').to_string();
                            let is_md5 =
                                etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit());
                            let Some(md5) = md5 else { return Ok(pid) };
                            if is_md5 && etag != md5 {
                                Err(err(
                                    &url,
                                    &nm,
                                    op,
                                    format!("the server stored MD5 {etag}, we sent {md5}"),
                                ))
                            } else {
                                Ok(pid)
                            }
                        });
                    drop(permit);
                    let _ = tx.send((i, n, r));
                });
            }
            // Only the tasks hold senders now: a task that died ends the wait below.
            drop(done_tx);
            while received < parts {
                let r = done_rx
                    .blocking_recv()
                    .ok_or_else(|| err(&self.url, name, "upload part", "upload tasks ended"))?;
                received += 1;
                handle_done(r, &mut ids)?;
            }
            let ids: Vec<PartId> = ids.into_iter().flatten().collect();
            self.rt
                .block_on(self.s3.complete_multipart(&path, &id, ids))
                .map_err(|e| os_err(&self.url, name, "complete multipart upload", e))?;
            Ok(())
        })();
        if result.is_err() {
            let _ = self.rt.block_on(self.s3.abort_multipart(&path, &id));
        }
        result
    }
}

impl S3Opener {
    /// The opener a program builds from its environment, given as `var` (a lookup of
    /// environment variables; the library reads none itself) and the user's home folder:
    /// credentials as [`Credentials::find`], the server from `AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL`, the region from `AWS_REGION` or `AWS_DEFAULT_REGION`, and
    /// `DOS_S3_PART_SIZE` (bytes), `DOS_S3_PARTS_IN_FLIGHT`, `DOS_S3_MAX_RETRIES` and
    /// `DOS_S3_RETRY_TIMEOUT` (seconds) for the transfers, `DOS_S3_CHECK_PART_ETAG=1` to
    /// check each part's MD5 against its ETag. An unparsable value is an error naming the
    /// variable.
    pub fn from_vars(
        var: &dyn Fn(&str) -> Option<String>,
        home: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        fn num<T: std::str::FromStr>(
            var: &dyn Fn(&str) -> Option<String>,
            name: &str,
            what: &str,
        ) -> Result<Option<T>, String> {
            match var(name) {
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}={v:?}: expected {what}")),
                None => Ok(None),
            }
        }
        let mut tuning = Tuning::default();
        if let Some(v) = num(var, "DOS_S3_PART_SIZE", "bytes")? {
            tuning.part_size = v;
        }
        if let Some(v) = num(var, "DOS_S3_PARTS_IN_FLIGHT", "a count")? {
            tuning.parts_in_flight = v;
        }
        if let Some(v) = num(var, "DOS_S3_MAX_RETRIES", "a count")? {
            tuning.max_retries = v;
        }
        if let Some(v) = num::<u64>(var, "DOS_S3_RETRY_TIMEOUT", "seconds")? {
            tuning.retry_timeout = Duration::from_secs(v);
        }
        if let Some(v) = var("DOS_S3_CHECK_PART_ETAG") {
            tuning.check_part_etag = match v.as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" | "" => false,
                _ => return Err(format!("DOS_S3_CHECK_PART_ETAG={v:?}: expected 1 or 0")),
            };
        }
        Ok(Self {
            credentials: Credentials::find(var, home),
            default_endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
            default_region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            tuning,
            cache_dir: None,
        })
    }

    /// Where a program keeps published snapshots it opens, from `var` and the home folder:
    /// `DOS_CACHE_DIR`, else `XDG_CACHE_HOME/dos`, else `~/.cache/dos`.
    pub fn cache_root(
        var: &dyn Fn(&str) -> Option<String>,
        home: Option<&std::path::Path>,
    ) -> Option<std::path::PathBuf> {
        var("DOS_CACHE_DIR")
            .map(std::path::PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|x| std::path::PathBuf::from(x).join("dos")))
            .or_else(|| home.map(|h| h.join(".cache").join("dos")))
    }

    /// Open the published snapshot at `url` (read-only), keeping its index under
    /// `cache_root/<bucket>/<prefix>/`.
    pub fn open_published(
        &self,
        url: &dos_core::remote::RemoteUrl,
        cache_root: &std::path::Path,
        io: dos_core::IoOptions,
    ) -> dos_core::Result<dos_core::Container> {
        let cache = cache_root
            .join(&url.bucket)
            .join(url.prefix.replace('/', "%"))
            .join("snapshots");
        let store = self.open(&RemoteSettings::new(url.clone()))?;
        dos_core::Container::open_published(store, &cache, io)
    }
}

impl S3Store {
    /// Upload the first `length` bytes of `file` as `name` with `object_store`'s own
    /// `WriteMultipart` (the same part size and parts in flight as [`RemoteStore::upload_file`]),
    /// without hashing or verifying anything: the plain upload offloads are measured against.
    /// Returns the bytes sent.
    pub fn upload_plain(&self, name: &str, file: &File, length: u64) -> Result<u64, RemoteError> {
        use object_store::WriteMultipart;
        let path = self.path(name);
        let part = self.tuning.part_size.max(5 * 1024 * 1024);
        self.rt.block_on(async {
            let upload = self
                .s3
                .put_multipart(&path)
                .await
                .map_err(|e| os_err(&self.url, name, "create multipart upload", e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, part);
            let mut at = 0u64;
            while at < length {
                let n = (part as u64).min(length - at);
                let mut buf = vec![0u8; n as usize];
                dos_core::fileio::read_exact_at(file, &mut buf, at)
                    .map_err(|e| err(&self.url, name, "read local file", e))?;
                w.wait_for_capacity(self.tuning.parts_in_flight.max(1))
                    .await
                    .map_err(|e| os_err(&self.url, name, "upload part", e))?;
                w.put(Bytes::from(buf));
                at += n;
            }
            w.finish()
                .await
                .map_err(|e| os_err(&self.url, name, "complete multipart upload", e))?;
            Ok(length)
        })
    }
}
