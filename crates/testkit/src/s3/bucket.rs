//! The bucket store behind the server: objects and multipart uploads in
//! memory, and the `s3s` operations over them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use s3s::crypto::{Checksum, Crc64Nvme};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

#[derive(Debug, Clone)]
struct Stored {
    data: Bytes,
    e_tag: String,
    last_modified: SystemTime,
}

type Bucket = BTreeMap<String, Stored>;

/// Buckets held in memory behind the S3 API. Clones share the buckets
/// (the service takes its implementation by value; the server keeps a clone
/// to count objects).
#[derive(Debug, Default, Clone)]
pub struct MemoryS3 {
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    /// PUTs whose signature did not cover the payload, so tests can check
    /// what a client sent.
    pub(super) unsigned_puts: Arc<AtomicUsize>,
    /// Multipart uploads in progress: id -> (bucket, key, parts by number).
    uploads: Arc<Mutex<HashMap<String, Upload>>>,
    next_upload: Arc<AtomicUsize>,
    /// Multipart uploads completed, so tests can check large objects used them.
    pub(super) completed_uploads: Arc<AtomicUsize>,
    /// When set, every part after the first is refused (AccessDenied, which
    /// clients do not retry), so tests can see a failed upload aborted.
    pub(super) refuse_later_parts: Arc<std::sync::atomic::AtomicBool>,
    /// HTTP requests answered so far, of every kind.
    pub(super) requests: Arc<AtomicUsize>,
    /// Microseconds every request waits before it is handled: the time to
    /// first byte of a store across a network (20 ms stands for in-region S3).
    pub(super) latency_us: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug)]
pub(super) struct Upload {
    bucket: String,
    key: String,
    parts: BTreeMap<i32, Bytes>,
}

impl MemoryS3 {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Bucket>> {
        // A panic while holding the lock cannot leave a map half-updated
        // (every update is one insert or remove), so a poisoned lock is safe to reuse.
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_bucket<T>(&self, name: &str, f: impl FnOnce(&mut Bucket) -> T) -> S3Result<T> {
        let mut buckets = self.lock();
        let bucket = buckets
            .get_mut(name)
            .ok_or_else(|| s3_error!(NoSuchBucket))?;
        Ok(f(bucket))
    }

    /// An empty bucket `name` (replacing any of that name).
    pub(super) fn add_bucket(&self, name: &str) {
        self.lock().insert(name.to_string(), Bucket::new());
    }

    pub(super) fn object_count(&self) -> usize {
        self.lock().values().map(BTreeMap::len).sum()
    }

    pub(super) fn uploads(&self) -> MutexGuard<'_, HashMap<String, Upload>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request body in memory, and its ETag.
async fn read_body(
    body: Option<StreamingBlob>,
    capacity: Option<i64>,
) -> S3Result<(Bytes, String)> {
    let mut chunks = body.ok_or_else(|| s3_error!(IncompleteBody))?;
    let capacity = capacity.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let mut data = BytesMut::with_capacity(capacity);
    let mut crc = Crc64Nvme::new();
    while let Some(chunk) = chunks
        .try_next()
        .await
        .map_err(|e| s3_error!(IncompleteBody, "reading the body: {e}"))?
    {
        crc.update(&chunk);
        data.extend_from_slice(&chunk);
    }
    let e_tag = format!("{}-{}", hex(&crc.finalize()), data.len());
    Ok((data.freeze(), e_tag))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn size_of(data: &Bytes) -> i64 {
    i64::try_from(data.len()).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl S3 for MemoryS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let mut buckets = self.lock();
        if buckets.contains_key(&req.input.bucket) {
            return Err(s3_error!(BucketAlreadyOwnedByYou));
        }
        buckets.insert(req.input.bucket, Bucket::new());
        Ok(S3Response::new(CreateBucketOutput::default()))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.with_bucket(&req.input.bucket, |_| ())?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .lock()
            .keys()
            .map(|name| s3s::dto::Bucket {
                name: Some(name.clone()),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        if req
            .headers
            .get("x-amz-content-sha256")
            .is_some_and(|v| v == "UNSIGNED-PAYLOAD")
        {
            self.unsigned_puts.fetch_add(1, Ordering::Relaxed);
        }
        let input = req.input;
        self.with_bucket(&input.bucket, |_| ())?;
        let (data, e_tag) = read_body(input.body, input.content_length).await?;
        let stored = Stored {
            data,
            e_tag: e_tag.clone(),
            last_modified: SystemTime::now(),
        };
        self.with_bucket(&input.bucket, |b| b.insert(input.key, stored))?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(e_tag)),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        self.with_bucket(&input.bucket, |_| ())?;
        let id = format!(
            "upload-{}",
            self.next_upload.fetch_add(1, Ordering::Relaxed)
        );
        self.uploads().insert(
            id.clone(),
            Upload {
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        if !self.uploads().contains_key(&input.upload_id) {
            return Err(s3_error!(NoSuchUpload));
        }
        if input.part_number > 1 && self.refuse_later_parts.load(Ordering::Relaxed) {
            return Err(s3_error!(
                AccessDenied,
                "parts after the first are refused (test)"
            ));
        }
        let (data, e_tag) = read_body(input.body, input.content_length).await?;
        let mut uploads = self.uploads();
        let upload = uploads
            .get_mut(&input.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        upload.parts.insert(input.part_number, data);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(e_tag)),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let upload = self
            .uploads()
            .remove(&input.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        if upload.bucket != input.bucket || upload.key != input.key {
            return Err(s3_error!(NoSuchUpload));
        }
        let listed: Vec<i32> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.part_number)
            .collect();
        let mut data = BytesMut::new();
        for number in &listed {
            let part = upload
                .parts
                .get(number)
                .ok_or_else(|| s3_error!(InvalidPart))?;
            data.extend_from_slice(part);
        }
        let mut crc = Crc64Nvme::new();
        crc.update(&data);
        let e_tag = format!("{}-{}-{}", hex(&crc.finalize()), data.len(), listed.len());
        let stored = Stored {
            data: data.freeze(),
            e_tag: e_tag.clone(),
            last_modified: SystemTime::now(),
        };
        self.with_bucket(&input.bucket, |b| b.insert(input.key.clone(), stored))?;
        self.completed_uploads.fetch_add(1, Ordering::Relaxed);
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(ETag::Strong(e_tag)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.uploads()
            .remove(&req.input.upload_id)
            .ok_or_else(|| s3_error!(NoSuchUpload))?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let stored = self
            .with_bucket(&input.bucket, |b| b.get(&input.key).cloned())?
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        let full = stored.data.len() as u64;
        let (body, content_range) = match input.range {
            None => (stored.data.clone(), None),
            Some(range) => {
                let r = range.check(full)?;
                let (start, end) = (r.start as usize, r.end as usize);
                (
                    stored.data.slice(start..end),
                    Some(format!(
                        "bytes {}-{}/{full}",
                        r.start,
                        r.end.saturating_sub(1)
                    )),
                )
            }
        };
        Ok(S3Response::new(GetObjectOutput {
            content_length: Some(size_of(&body)),
            content_range,
            e_tag: Some(ETag::Strong(stored.e_tag)),
            last_modified: Some(Timestamp::from(stored.last_modified)),
            body: Some(StreamingBlob::from(s3s::Body::from(body))),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let stored = self
            .with_bucket(&input.bucket, |b| b.get(&input.key).cloned())?
            .ok_or_else(|| s3_error!(NoSuchKey))?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(size_of(&stored.data)),
            e_tag: Some(ETag::Strong(stored.e_tag)),
            last_modified: Some(Timestamp::from(stored.last_modified)),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        self.with_bucket(&input.bucket, |b| b.remove(&input.key))?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let keys: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
        self.with_bucket(&input.bucket, |b| {
            for key in &keys {
                b.remove(key);
            }
        })?;
        let deleted = keys
            .into_iter()
            .map(|key| DeletedObject {
                key: Some(key),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let after = match (&input.continuation_token, &input.start_after) {
            (Some(token), _) => token.clone(),
            (None, Some(start)) => start.clone(),
            (None, None) => String::new(),
        };
        // Entries in key order: objects, or common prefixes when a delimiter groups them.
        let listing: Vec<(String, Option<Object>)> = self.with_bucket(&input.bucket, |b| {
            let mut seen_prefixes = BTreeSet::new();
            let mut out = Vec::new();
            for (key, stored) in b.range(prefix.clone()..) {
                if !key.starts_with(&prefix) {
                    break;
                }
                let rest = &key[prefix.len()..];
                let grouped = input
                    .delimiter
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .and_then(|d| {
                        rest.find(d)
                            .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
                    });
                match grouped {
                    Some(common) => {
                        if seen_prefixes.insert(common.clone()) {
                            out.push((common, None));
                        }
                    }
                    None => out.push((
                        key.clone(),
                        Some(Object {
                            key: Some(key.clone()),
                            size: Some(size_of(&stored.data)),
                            e_tag: Some(ETag::Strong(stored.e_tag.clone())),
                            last_modified: Some(Timestamp::from(stored.last_modified)),
                            ..Default::default()
                        }),
                    )),
                }
            }
            out
        })?;
        let mut remaining = listing.into_iter().filter(|(k, _)| *k > after).peekable();
        let mut contents = Vec::new();
        let mut common_prefixes = Vec::new();
        let mut last = None;
        for (key, object) in remaining.by_ref().take(max_keys) {
            match object {
                Some(o) => contents.push(o),
                None => common_prefixes.push(CommonPrefix {
                    prefix: Some(key.clone()),
                }),
            }
            last = Some(key);
        }
        let truncated = remaining.peek().is_some();
        let count = contents.len() + common_prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            max_keys: input.max_keys,
            key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
            is_truncated: Some(truncated),
            next_continuation_token: if truncated { last } else { None },
            continuation_token: input.continuation_token,
            start_after: input.start_after,
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes: (!common_prefixes.is_empty()).then_some(common_prefixes),
            ..Default::default()
        }))
    }
}
