//! The data plane end to end: push, change, push, restore through the local-directory store
//! and a real S3 server (s3s-fs), with resumption, interruption, wrong keys and S3 faults.

mod faulty;
mod s3;
mod story;
mod t01_local;
mod t02_s3;
mod tree;
