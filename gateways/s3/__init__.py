"""The `s3` (alias `minio`) gateway: new objects in an S3-compatible bucket.

`source` is the kind (`S3Source`, its spec and the three ways of observing a bucket);
`connections` makes the S3 and SQS clients, `listing` walks a bucket with a watermark,
`streaming` reads MinIO's notification stream and SQS queues, `records` turns what either
reports into S3 event records, and `reporting` dispatches them once per object version.
"""
