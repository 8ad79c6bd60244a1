//! Where a migration's volume data comes from. [`VolumeSource`] finds the volumes of the
//! migrated namespaces; [`DirectoryVolumes`], the one implemented today, serves PVCs bound to
//! `hostPath` or `local` PersistentVolumes, whose data is a directory this worker can read (as
//! on one node, and in every test). CSI volumes would come through a snapshot mover behind the
//! same trait (snapshot → clone PVC → mover pod), as VolSync and Velero do.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Client;
use kube::api::{Api, ListParams};

/// One volume to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The PVC's namespace.
    pub namespace: String,
    /// The PVC.
    pub claim: String,
    /// The bound PersistentVolume.
    pub volume: String,
    /// Where its data is on this worker.
    pub path: PathBuf,
}

impl Volume {
    /// Its name in the object store: `<namespace>.<claim>` (both DNS labels, so unambiguous).
    pub fn store_name(&self) -> String {
        format!("{}.{}", self.namespace, self.claim)
    }
}

/// What one volume's copy sent, as a successful migration's volume `reason` says it:
/// `Migration successful for volume (full run 1: 8 files changed, 812345 bytes sent)`.
/// The pool writes it with [`Display`](std::fmt::Display) and readers (`avocet demo`) parse it
/// back with [`VolumeSent::parse`], so the two cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSent {
    /// Whether every file was read (the first run, or `mode: DisasterRecovery` resyncs).
    pub full: bool,
    /// The run of the volume in the store.
    pub run: u64,
    /// Files added or changed since the previous run.
    pub files_changed: u64,
    /// Bytes written to the store (chunks the store lacked, indexes and the manifest).
    pub bytes_sent: u64,
}

impl std::fmt::Display for VolumeSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.full { "full" } else { "incremental" };
        write!(
            f,
            "Migration successful for volume ({kind} run {}: {} files changed, {} bytes sent)",
            self.run, self.files_changed, self.bytes_sent
        )
    }
}

impl VolumeSent {
    /// Reads a volume reason written by [`Display`](std::fmt::Display); `None` for any other
    /// reason (a failure, or one written by Stork).
    pub fn parse(reason: &str) -> Option<VolumeSent> {
        let inner = reason.strip_prefix("Migration successful for volume (")?.strip_suffix(')')?;
        let (head, tail) = inner.split_once(": ")?;
        let full = match head.split(' ').next()? {
            "full" => true,
            "incremental" => false,
            _ => return None,
        };
        let run = head.strip_prefix(if full { "full run " } else { "incremental run " })?;
        let (files, bytes) = tail.split_once(" files changed, ")?;
        Some(VolumeSent {
            full,
            run: run.parse().ok()?,
            files_changed: files.parse().ok()?,
            bytes_sent: bytes.strip_suffix(" bytes sent")?.parse().ok()?,
        })
    }
}

/// What a source found: the volumes it can copy and the claims it cannot, with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Volumes to copy.
    pub volumes: Vec<Volume>,
    /// (namespace, claim, reason) of each claim that cannot be copied.
    pub refused: Vec<(String, String, String)>,
}

/// What a source's lookup returns.
pub type SourceFuture<'a> = Pin<Box<dyn Future<Output = Result<Found, String>> + Send + 'a>>;

/// Finds the volumes of a migration's namespaces on the source cluster.
pub trait VolumeSource: Send + Sync {
    /// The volumes of `namespaces`.
    fn volumes<'a>(&'a self, client: &'a Client, namespaces: &'a [String]) -> SourceFuture<'a>;
}

/// PVCs bound to hostPath or local PersistentVolumes: their data is a directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectoryVolumes;

impl VolumeSource for DirectoryVolumes {
    fn volumes<'a>(&'a self, client: &'a Client, namespaces: &'a [String]) -> SourceFuture<'a> {
        Box::pin(async move {
            let pvs: Api<PersistentVolume> = Api::all(client.clone());
            let mut found = Found::default();
            for namespace in namespaces {
                let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
                let list = claims
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| format!("cannot list the PVCs of namespace {namespace}: {e}"))?;
                for claim in list.items {
                    let name = claim.metadata.name.clone().unwrap_or_default();
                    let refuse = |found: &mut Found, why: String| {
                        found.refused.push((namespace.clone(), name.clone(), why));
                    };
                    let Some(pv_name) = claim.spec.as_ref().and_then(|s| s.volume_name.clone())
                    else {
                        refuse(&mut found, "the claim is not bound to a volume".to_owned());
                        continue;
                    };
                    let pv = match pvs.get_opt(&pv_name).await {
                        Ok(Some(pv)) => pv,
                        Ok(None) => {
                            refuse(&mut found, format!("its volume {pv_name} does not exist"));
                            continue;
                        }
                        Err(e) => return Err(format!("cannot read volume {pv_name}: {e}")),
                    };
                    let spec = pv.spec.unwrap_or_default();
                    let path =
                        spec.host_path.map(|h| h.path).or_else(|| spec.local.map(|l| l.path));
                    match path {
                        Some(path) => found.volumes.push(Volume {
                            namespace: namespace.clone(),
                            claim: name.clone(),
                            volume: pv_name,
                            path: PathBuf::from(path),
                        }),
                        None => refuse(
                            &mut found,
                            format!(
                                "volume {pv_name} is neither hostPath nor local; Avocet copies directory volumes today"
                            ),
                        ),
                    }
                }
            }
            found.volumes.sort_by(|a, b| (&a.namespace, &a.claim).cmp(&(&b.namespace, &b.claim)));
            Ok(found)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_reason_reads_back_what_was_written() {
        for sent in [
            VolumeSent { full: true, run: 1, files_changed: 8, bytes_sent: 812_345 },
            VolumeSent { full: false, run: 12, files_changed: 0, bytes_sent: 0 },
        ] {
            assert_eq!(VolumeSent::parse(&sent.to_string()), Some(sent));
        }
        assert_eq!(VolumeSent::parse("Migration successful for volume"), None);
        assert_eq!(
            VolumeSent::parse(
                "Migration successful for volume (partial run 1: 1 files changed, 2 bytes sent)"
            ),
            None
        );
    }
}
