//! The worker pool: actix actors on a thread of their own, behind a `Send` [`WorkerPool`]
//! handle (the rest of the system never sees an actix type).
//!
//! A [`MigrationActor`] runs one leased migration through Stork's stages (PreExecRule →
//! Volumes → PostExecRule → Applications → Final). The pre-exec rule runs first (see
//! [`crate::rules`]); in Volumes it starts one [`VolumeActor`] per PVC, a bounded number at a
//! time; each pushes its directory through `avocet-transfer` into the pair's store, then has
//! the destination restore that run, each step retried with capped backoff. Once every volume
//! is pushed, the pre-exec rule's background commands are released and the post-exec rule
//! runs, beside any restores still going. In Applications the resource copy runs. Actors coordinate; the IO runs on the tokio runtime
//! the pool was given, so an actor's thread never blocks. Progress (bytes and objects done and
//! to do) goes out at least every `report_every`. Dropping the future of [`WorkerPool::run`]
//! (a lost lease) cancels the migration: every task it started is aborted.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;
use avocet_transfer::plan::Mode;
use avocet_transfer::push::{self, PushOptions};
use avocet_transfer::repo::Repository;
use avocet_types::clusterpair::ClusterPair;
use avocet_types::migration::{
    Migration, MigrationResourceInfo, MigrationStage, MigrationStatusType, MigrationVolumeInfo,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::resources::copy::{CopyRequest, copy};
use crate::volumes::{Volume, VolumeSource};

/// A leased migration, with what running it needs.
#[derive(Debug, Clone)]
pub struct MigrationJob {
    /// The migration's namespace.
    pub namespace: String,
    /// The migration's name.
    pub name: String,
    /// The migration as the catalog stores it.
    pub migration: Migration,
    /// Its ClusterPair.
    pub pair: ClusterPair,
    /// The pair's store from its stored credentials (`None`: the pool's own store).
    pub store: Option<avocet_transfer::store::StoreSpec>,
    /// The Rule `spec.preExecRule` names, as the catalog holds it (`None`: none, or missing).
    pub pre_exec_rule: Option<avocet_types::rule::Rule>,
    /// The Rule `spec.postExecRule` names, as the catalog holds it (`None`: none, or missing).
    pub post_exec_rule: Option<avocet_types::rule::Rule>,
    /// The lease's fencing token.
    pub token: u64,
    /// The source scheduler group's id, within which fencing tokens are numbered.
    pub source: String,
}

/// Where a running migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobReport {
    /// The stage.
    pub stage: MigrationStage,
    /// Bytes done and to do (volumes).
    pub bytes: (u64, u64),
    /// Objects done and to do (volumes, then resources).
    pub objects: (u64, u64),
    /// The volume transfer's rate so far, in bytes per second (0: not known).
    pub bytes_per_second: u64,
    /// Expected seconds left of the volume transfer (0: not known or done).
    pub eta_seconds: u64,
}

/// How a migration ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    /// Successful, PartialSuccess or Failed.
    pub status: MigrationStatusType,
    /// Why, when it did not succeed.
    pub reason: String,
    /// Stork's status.volumes.
    pub volumes: Vec<MigrationVolumeInfo>,
    /// Stork's status.resources.
    pub resources: Vec<MigrationResourceInfo>,
    /// The last counts.
    pub last: Option<JobReport>,
}

impl JobOutcome {
    fn failed(reason: String) -> JobOutcome {
        JobOutcome {
            status: MigrationStatusType::Failed,
            reason,
            volumes: Vec::new(),
            resources: Vec::new(),
            last: None,
        }
    }
}

/// What a pool's seams return.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Opens the object store of a migration's pair with the pair's key.
pub trait Stores: Send + Sync {
    /// The repository the volumes of `job` go to.
    fn open<'a>(&'a self, job: &'a MigrationJob) -> Boxed<'a, Repository>;
}

/// The destination side of a volume copy: writes a pushed run into the destination volume.
pub trait Destination: Send + Sync {
    /// Restores run `run` of `volume` (by its store name) on the destination of `job`'s pair;
    /// returns the directory that holds it there (the destination PersistentVolume's new path).
    fn restore<'a>(
        &'a self,
        job: &'a MigrationJob,
        volume: &'a Volume,
        run: u64,
    ) -> Boxed<'a, String>;
}

/// How a pool runs.
#[derive(Clone)]
pub struct PoolConfig {
    /// The source cluster.
    pub source: kube::Client,
    /// The pairs' stores.
    pub stores: Arc<dyn Stores>,
    /// The pairs' destinations.
    pub destination: Arc<dyn Destination>,
    /// Where volumes come from.
    pub volumes: Arc<dyn VolumeSource>,
    /// Migrations run at once.
    pub migrations_at_once: usize,
    /// Volumes of one migration copied at once.
    pub volumes_at_once: usize,
    /// The longest time between progress reports (at most 5 s).
    pub report_every: Duration,
    /// Attempts per volume, the first included.
    pub volume_attempts: u32,
    /// How pre- and post-exec rules run.
    pub rules: crate::rules::RuleSettings,
    /// The runtime the IO runs on.
    pub runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolConfig")
            .field("migrations_at_once", &self.migrations_at_once)
            .field("volumes_at_once", &self.volumes_at_once)
            .finish_non_exhaustive()
    }
}

/// The pool: a `Send` handle on actors running on their own thread.
#[derive(Debug)]
pub struct WorkerPool {
    supervisor: Addr<Supervisor>,
    system: actix::System,
    thread: Option<std::thread::JoinHandle<()>>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl WorkerPool {
    /// Starts the actor system on a new thread.
    pub fn start(config: PoolConfig) -> std::io::Result<WorkerPool> {
        let slots = Arc::new(tokio::sync::Semaphore::new(config.migrations_at_once.max(1)));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread =
            std::thread::Builder::new().name("avocet-workers".to_owned()).spawn(move || {
                let system = actix::System::new();
                system.block_on(async move {
                    let supervisor = Supervisor { config: Arc::new(config) }.start();
                    let _ = tx.send((supervisor, actix::System::current()));
                });
                let _ = system.run();
            })?;
        let (supervisor, system) =
            rx.recv().map_err(|_| std::io::Error::other("the worker actors did not start"))?;
        Ok(WorkerPool { supervisor, system, thread: Some(thread), slots })
    }

    /// Runs `job` to its end, sending reports on `progress`; dropping the future cancels it.
    pub async fn run(&self, job: MigrationJob, progress: mpsc::Sender<JobReport>) -> JobOutcome {
        let Ok(_slot) = self.slots.acquire().await else {
            return JobOutcome::failed("the worker pool is stopping".to_owned());
        };
        let (done, outcome) = oneshot::channel();
        let started = self.supervisor.send(Start { job, progress, done }).await;
        let Ok(actor) = started else {
            return JobOutcome::failed("the worker pool is stopping".to_owned());
        };
        let guard = CancelOnDrop(Some(actor));
        let outcome = outcome.await;
        let mut guard = guard;
        guard.0 = None;
        outcome.unwrap_or_else(|_| JobOutcome::failed("the migration's actor stopped".to_owned()))
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Cancels a migration whose caller stopped waiting.
struct CancelOnDrop(Option<Addr<MigrationActor>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(actor) = self.0.take() {
            actor.do_send(Cancel);
        }
    }
}

/// Starts the actors of each migration.
struct Supervisor {
    config: Arc<PoolConfig>,
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
    }
}

#[derive(Message)]
#[rtype(result = "Addr<MigrationActor>")]
struct Start {
    job: MigrationJob,
    progress: mpsc::Sender<JobReport>,
    done: oneshot::Sender<JobOutcome>,
}

impl Handler<Start> for Supervisor {
    type Result = MessageResult<Start>;

    fn handle(&mut self, msg: Start, _: &mut Self::Context) -> Self::Result {
        let actor = MigrationActor {
            config: self.config.clone(),
            job: Arc::new(msg.job),
            progress: msg.progress,
            done: Some(msg.done),
            stage: MigrationStage::Initial,
            pending: Vec::new(),
            running: BTreeMap::new(),
            volume_bytes: BTreeMap::new(),
            volumes: Vec::new(),
            resources: Vec::new(),
            objects: (0, 0),
            tasks: Vec::new(),
            paths: BTreeMap::new(),
            volumes_started: None,
            held: crate::rules::Holding::default(),
            pushed: std::collections::BTreeSet::new(),
            after: AfterPushes::Waiting,
            pre_started: false,
        };
        MessageResult(actor.start())
    }
}

/// Stops a migration and everything it started.
#[derive(Message)]
#[rtype(result = "()")]
struct Cancel;

/// A volume's counts.
#[derive(Message)]
#[rtype(result = "()")]
struct VolumeProgress {
    key: String,
    done: u64,
    total: u64,
}

/// A volume's push is done: the source has been read.
#[derive(Message)]
#[rtype(result = "()")]
struct VolumePushed {
    key: String,
}

/// A volume's end.
#[derive(Message)]
#[rtype(result = "()")]
struct VolumeDone {
    key: String,
    info: MigrationVolumeInfo,
    path: Option<String>,
}

/// One migration, stage by stage.
pub struct MigrationActor {
    config: Arc<PoolConfig>,
    job: Arc<MigrationJob>,
    progress: mpsc::Sender<JobReport>,
    done: Option<oneshot::Sender<JobOutcome>>,
    stage: MigrationStage,
    pending: Vec<Volume>,
    running: BTreeMap<String, Addr<VolumeActor>>,
    volume_bytes: BTreeMap<String, (u64, u64)>,
    volumes: Vec<MigrationVolumeInfo>,
    resources: Vec<MigrationResourceInfo>,
    objects: (u64, u64),
    tasks: Vec<AbortHandle>,
    paths: BTreeMap<String, String>,
    volumes_started: Option<avocet_transfer::stopwatch::Stopwatch>,
    /// The pre-exec rule's background commands, holding until every volume is pushed.
    held: crate::rules::Holding,
    /// The volumes pushed so far (by store name).
    pushed: std::collections::BTreeSet<String>,
    /// Where releasing the hold and the post-exec rule stand.
    after: AfterPushes,
    /// Says the pre-exec rule began (so a failure still runs the post-exec rule).
    pre_started: bool,
}

/// Where the work after the pushes stands (see [`MigrationActor::after_pushes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterPushes {
    /// Some volume is not pushed yet.
    Waiting,
    /// Releasing the hold and running the post-exec rule.
    Running,
    /// Done: the applications may start once the restores are.
    Done,
}

impl MigrationActor {
    fn report(&self) -> JobReport {
        let (done, total) =
            self.volume_bytes.values().fold((0, 0), |(d, t), (vd, vt)| (d + vd, t + vt));
        let millis = self
            .volumes_started
            .map_or(0, |w| u64::try_from(w.elapsed().as_millis()).unwrap_or(u64::MAX));
        let bytes_per_second = done.saturating_mul(1000).checked_div(millis).unwrap_or(0);
        let eta_seconds = match bytes_per_second {
            0 => 0,
            rate => total.saturating_sub(done).div_ceil(rate),
        };
        JobReport {
            stage: self.stage,
            bytes: (done, total),
            objects: self.objects,
            bytes_per_second,
            eta_seconds,
        }
    }

    fn send_report(&self) {
        let _ = self.progress.try_send(self.report());
    }

    fn finish(&mut self, ctx: &mut Context<Self>, status: MigrationStatusType, reason: String) {
        self.wind_down();
        self.stage = MigrationStage::Final;
        self.send_report();
        if let Some(done) = self.done.take() {
            let _ = done.send(JobOutcome {
                status,
                reason,
                volumes: std::mem::take(&mut self.volumes),
                resources: std::mem::take(&mut self.resources),
                last: Some(self.report()),
            });
        }
        ctx.stop();
    }

    /// On failure paths and cancels: releases what the pre-exec rule holds and, when the
    /// pre-exec rule ran but the post-exec rule has not, runs the post-exec rule (a "thaw"
    /// after a "freeze"), best effort, on a detached task that nothing aborts.
    fn wind_down(&mut self) {
        let held = crate::rules::take(&self.held);
        let post = match self.after {
            AfterPushes::Waiting if self.pre_started => self.job.post_exec_rule.clone(),
            _ => None,
        };
        self.after = AfterPushes::Done;
        if held.is_empty() && post.is_none() {
            return;
        }
        let (source, job, settings) =
            (self.config.source.clone(), self.job.clone(), self.config.rules);
        self.config.runtime.spawn(async move {
            if let Err(reason) =
                release_then_post(held, post.as_ref(), &source, &job, &settings).await
            {
                tracing::warn!(migration = %job.name, %reason, "winding down a migration's rules");
            }
        });
    }

    /// Runs the pre-exec rule, then the volumes; a named rule that does not exist fails the
    /// migration before anything runs.
    fn start_pre_rule(&mut self, ctx: &mut Context<Self>) {
        let (job, spec) = (&self.job, &self.job.migration.spec);
        let missing = [
            ("spec.preExecRule", &spec.pre_exec_rule, &job.pre_exec_rule),
            ("spec.postExecRule", &spec.post_exec_rule, &job.post_exec_rule),
        ]
        .into_iter()
        .find(|(_, name, rule)| !name.is_empty() && rule.is_none())
        .map(|(field, name, _)| {
            format!("{field} {name:?}: there is no Rule {name} in namespace {}", job.namespace)
        });
        if let Some(reason) = missing {
            return self.finish(ctx, MigrationStatusType::Failed, reason);
        }
        let Some(rule) = self.job.pre_exec_rule.clone() else {
            return self.start_volumes(ctx);
        };
        self.stage = MigrationStage::PreExecRule;
        self.pre_started = true;
        self.send_report();
        let (source, job, settings) =
            (self.config.source.clone(), self.job.clone(), self.config.rules);
        let holding = self.held.clone();
        self.run_on_runtime(
            ctx,
            async move {
                let context = crate::rules::RuleContext {
                    field: "spec.preExecRule",
                    token: job.token,
                    background_allowed: true,
                };
                let namespaces = &job.migration.spec.namespaces;
                crate::rules::run_rule(&source, &rule, namespaces, context, &settings, &holding)
                    .await
            },
            |actor, ctx, ran| match ran.and_then(|r| r) {
                Err(reason) => actor.finish(ctx, MigrationStatusType::Failed, reason),
                Ok(()) => actor.start_volumes(ctx),
            },
        );
    }

    /// Once every volume is pushed (the source has been read; restores may still run):
    /// releases the pre-exec rule's background commands and runs the post-exec rule, as Stork
    /// does once its snapshots are taken. Not when a volume failed: the failure releases.
    fn after_pushes(&mut self, ctx: &mut Context<Self>) {
        let all_pushed = self.running.keys().all(|key| self.pushed.contains(key));
        let failed = self.volumes.iter().any(|v| v.status == MigrationStatusType::Failed);
        if self.after != AfterPushes::Waiting || !self.pending.is_empty() || !all_pushed || failed {
            return;
        }
        let held = crate::rules::take(&self.held);
        if held.is_empty() && self.job.post_exec_rule.is_none() {
            self.after = AfterPushes::Done;
            return self.maybe_applications(ctx);
        }
        self.after = AfterPushes::Running;
        let (source, job, settings) =
            (self.config.source.clone(), self.job.clone(), self.config.rules);
        // Not in `self.tasks`: a release must run to its end even if the migration stops.
        let handle = self.config.runtime.spawn(async move {
            release_then_post(held, job.post_exec_rule.as_ref(), &source, &job, &settings).await
        });
        let fut = async move { handle.await.map_err(|e| format!("the task stopped: {e}")) };
        ctx.spawn(fut.into_actor(self).map(|ran, actor, ctx| match ran.and_then(|r| r) {
            Err(reason) => actor.finish(ctx, MigrationStatusType::Failed, reason),
            Ok(()) => {
                actor.after = AfterPushes::Done;
                actor.maybe_applications(ctx);
            }
        }));
    }

    /// Starts the applications once the volumes are all done and so is [`Self::after_pushes`].
    fn maybe_applications(&mut self, ctx: &mut Context<Self>) {
        let volumes_done = self.running.is_empty() && self.pending.is_empty();
        let started = matches!(self.stage, MigrationStage::Applications | MigrationStage::Final);
        if volumes_done && !started {
            match self.after {
                AfterPushes::Done => self.start_applications(ctx),
                AfterPushes::Running if self.job.post_exec_rule.is_some() => {
                    self.stage = MigrationStage::PostExecRule;
                    self.send_report();
                }
                _ => {}
            }
        }
    }

    /// Runs `work` on the pool's runtime and hands its result to `then` on this actor.
    fn run_on_runtime<T: Send + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        work: impl Future<Output = T> + Send + 'static,
        then: impl FnOnce(&mut Self, &mut Context<Self>, Result<T, String>) + 'static,
    ) {
        let handle = self.config.runtime.spawn(work);
        self.tasks.push(handle.abort_handle());
        let fut = async move { handle.await.map_err(|e| format!("the task stopped: {e}")) };
        ctx.spawn(fut.into_actor(self).map(move |result, actor, ctx| then(actor, ctx, result)));
    }

    fn start_volumes(&mut self, ctx: &mut Context<Self>) {
        let spec = &self.job.migration.spec;
        if spec.include_volumes == Some(false) {
            return self.after_pushes(ctx);
        }
        self.stage = MigrationStage::Volumes;
        self.volumes_started = Some(avocet_transfer::stopwatch::Stopwatch::start());
        self.send_report();
        let (source, volumes) = (self.config.source.clone(), self.config.volumes.clone());
        let namespaces = spec.namespaces.clone();
        self.run_on_runtime(
            ctx,
            async move { volumes.volumes(&source, &namespaces).await },
            |actor, ctx, found| match found.and_then(|f| f) {
                Err(reason) => actor.finish(ctx, MigrationStatusType::Failed, reason),
                Ok(found) => {
                    for (namespace, claim, reason) in found.refused {
                        actor.volumes.push(MigrationVolumeInfo {
                            persistent_volume_claim: claim,
                            namespace,
                            status: MigrationStatusType::Failed,
                            reason,
                            ..MigrationVolumeInfo::default()
                        });
                    }
                    actor.objects.1 += found.volumes.len() as u64;
                    actor.pending = found.volumes;
                    actor.pending.reverse();
                    actor.next_volumes(ctx);
                }
            },
        );
    }

    fn next_volumes(&mut self, ctx: &mut Context<Self>) {
        while self.running.len() < self.config.volumes_at_once.max(1) {
            let Some(volume) = self.pending.pop() else { break };
            let key = volume.store_name();
            let actor = VolumeActor {
                config: self.config.clone(),
                job: self.job.clone(),
                volume,
                parent: ctx.address(),
                task: None,
            }
            .start();
            self.running.insert(key, actor);
        }
        if self.running.is_empty() && self.pending.is_empty() {
            if self.volumes.iter().any(|v| v.status == MigrationStatusType::Failed) {
                let failed: Vec<String> = self
                    .volumes
                    .iter()
                    .filter(|v| v.status == MigrationStatusType::Failed)
                    .map(|v| format!("{}/{}: {}", v.namespace, v.persistent_volume_claim, v.reason))
                    .collect();
                let reason = format!("volumes failed: {}", failed.join("; "));
                return self.finish(ctx, MigrationStatusType::Failed, reason);
            }
            self.after_pushes(ctx);
            self.maybe_applications(ctx);
        }
    }

    fn start_applications(&mut self, ctx: &mut Context<Self>) {
        if self.job.migration.spec.include_resources == Some(false) {
            return self.finish(ctx, MigrationStatusType::Successful, String::new());
        }
        self.stage = MigrationStage::Applications;
        self.send_report();
        let (source, job) = (self.config.source.clone(), self.job.clone());
        let paths = self.paths.clone();
        self.run_on_runtime(
            ctx,
            async move {
                let destination = crate::pairing::client_for(&job.pair).await.map_err(|e| {
                    format!("ClusterPair {}: {e}", job.pair.metadata.name.as_deref().unwrap_or(""))
                })?;
                let time = job
                    .migration
                    .metadata
                    .creation_timestamp
                    .clone()
                    .and_then(|t| {
                        let nanos = u32::try_from(t.0.subsec_nanosecond()).unwrap_or(0);
                        chrono::DateTime::from_timestamp(t.0.as_second(), nanos)
                    })
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
                let request = CopyRequest {
                    spec: &job.migration.spec,
                    migration_name: &job.name,
                    migration_namespace: &job.namespace,
                    time,
                    registrations: &[],
                    volume_paths: &paths,
                };
                copy(&source, &destination, &request).await.map_err(|e| e.to_string())
            },
            |actor, ctx, copied| match copied.and_then(|c| c) {
                Err(reason) => actor.finish(ctx, MigrationStatusType::Failed, reason),
                Ok(report) => {
                    let total = report.resources.len() as u64;
                    actor.objects = (actor.objects.0 + total, actor.objects.1 + total);
                    actor.resources = report.resources;
                    let reason = match report.status {
                        MigrationStatusType::Successful => String::new(),
                        _ => "some resources were not copied (see status.resources)".to_owned(),
                    };
                    actor.finish(ctx, report.status, reason);
                }
            },
        );
    }
}

impl Actor for MigrationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.config.report_every.min(Duration::from_secs(5)), |actor, _| {
            actor.send_report();
        });
        self.start_pre_rule(ctx);
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        for task in &self.tasks {
            task.abort();
        }
        self.wind_down();
        for volume in self.running.values() {
            volume.do_send(Cancel);
        }
        Running::Stop
    }
}

impl Handler<Cancel> for MigrationActor {
    type Result = ();

    fn handle(&mut self, _: Cancel, ctx: &mut Self::Context) {
        self.done = None;
        ctx.stop();
    }
}

impl Handler<VolumeProgress> for MigrationActor {
    type Result = ();

    fn handle(&mut self, msg: VolumeProgress, _: &mut Self::Context) {
        self.volume_bytes.insert(msg.key, (msg.done, msg.total));
    }
}

impl Handler<VolumePushed> for MigrationActor {
    type Result = ();

    fn handle(&mut self, msg: VolumePushed, ctx: &mut Self::Context) {
        self.pushed.insert(msg.key);
        self.after_pushes(ctx);
    }
}

impl Handler<VolumeDone> for MigrationActor {
    type Result = ();

    fn handle(&mut self, msg: VolumeDone, ctx: &mut Self::Context) {
        self.running.remove(&msg.key);
        if let Some(path) = msg.path {
            self.paths.insert(msg.info.volume.clone(), path);
        }
        if msg.info.status == MigrationStatusType::Failed {
            // The migration will fail: let the application go now, not after the others.
            self.wind_down();
        }
        if msg.info.status == MigrationStatusType::Successful {
            self.objects.0 += 1;
            self.volume_bytes.insert(msg.key, (msg.info.bytes_total, msg.info.bytes_total));
        }
        self.volumes.push(msg.info);
        self.next_volumes(ctx);
    }
}

/// One volume: push to the pair's store, then restore on the destination, with retries.
pub struct VolumeActor {
    config: Arc<PoolConfig>,
    job: Arc<MigrationJob>,
    volume: Volume,
    parent: Addr<MigrationActor>,
    task: Option<AbortHandle>,
}

impl Actor for VolumeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let progress = Arc::new(push::Progress::default());
        let (config, job, volume) = (self.config.clone(), self.job.clone(), self.volume.clone());
        // The total is a walk of the volume: it runs on the pool's runtime, never on this
        // actor's thread, and reads as 0 until it is known.
        let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (sized, path) = (total.clone(), volume.path.clone());
        config.runtime.spawn_blocking(move || sized.store(dir_size(&path), Ordering::Relaxed));
        let watched = progress.clone();
        let (parent, key) = (self.parent.clone(), volume.store_name());
        ctx.run_interval(Duration::from_millis(500), move |_, _| {
            let done = watched.scanned.load(Ordering::Relaxed);
            let total = total.load(Ordering::Relaxed);
            parent.do_send(VolumeProgress { key: key.clone(), done: done.min(total), total });
        });
        let pushed = self.parent.clone().recipient();
        let handle =
            config.runtime.clone().spawn(copy_volume(config, job, volume, progress, pushed));
        self.task = Some(handle.abort_handle());
        let fut = async move { handle.await.map_err(|e| format!("the task stopped: {e}")) };
        ctx.spawn(fut.into_actor(self).map(|result, actor, ctx| {
            let (info, path) = match result.and_then(|r| r) {
                Ok((bytes_total, path, reason)) => (
                    MigrationVolumeInfo {
                        persistent_volume_claim: actor.volume.claim.clone(),
                        namespace: actor.volume.namespace.clone(),
                        volume: actor.volume.volume.clone(),
                        status: MigrationStatusType::Successful,
                        bytes_total,
                        reason,
                    },
                    Some(path),
                ),
                Err(reason) => (
                    MigrationVolumeInfo {
                        persistent_volume_claim: actor.volume.claim.clone(),
                        namespace: actor.volume.namespace.clone(),
                        volume: actor.volume.volume.clone(),
                        status: MigrationStatusType::Failed,
                        bytes_total: 0,
                        reason,
                    },
                    None,
                ),
            };
            actor.parent.do_send(VolumeDone { key: actor.volume.store_name(), info, path });
            ctx.stop();
        }));
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        if let Some(task) = &self.task {
            task.abort();
        }
        Running::Stop
    }
}

impl Handler<Cancel> for VolumeActor {
    type Result = ();

    fn handle(&mut self, _: Cancel, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// The bytes of the files under `path` (a progress total; 0 when it cannot be read).
fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok().map(|m| (e.path(), m)))
        .map(|(p, m)| {
            if m.is_dir() {
                dir_size(&p)
            } else if m.is_file() {
                m.len()
            } else {
                0
            }
        })
        .sum()
}

/// Releases a pre-exec rule's background commands, then runs the post-exec rule, if any.
async fn release_then_post(
    held: crate::rules::Held,
    post: Option<&avocet_types::rule::Rule>,
    source: &kube::Client,
    job: &MigrationJob,
    settings: &crate::rules::RuleSettings,
) -> Result<(), String> {
    held.release().await.map_err(|reason| format!("spec.preExecRule: {reason}"))?;
    if let Some(rule) = post {
        let context = crate::rules::RuleContext {
            field: "spec.postExecRule",
            token: job.token,
            background_allowed: false,
        };
        let namespaces = &job.migration.spec.namespaces;
        let none = crate::rules::Holding::default();
        crate::rules::run_rule(source, rule, namespaces, context, settings, &none).await?;
    }
    Ok(())
}

/// Pushes a volume, says so to `pushed`, then has the destination restore that run; each step
/// is retried with capped backoff, and a failed restore is retried on the same run, so the
/// source is read once (while any pre-exec hold is in place). Returns the bytes of the volume,
/// where the destination holds it, and what the run was (full or incremental, for
/// status.volumes).
async fn copy_volume(
    config: Arc<PoolConfig>,
    job: Arc<MigrationJob>,
    volume: Volume,
    progress: Arc<push::Progress>,
    pushed: Recipient<VolumePushed>,
) -> Result<(u64, String, String), String> {
    let mode = match job.pair.spec.options.get("mode").map(String::as_str) {
        Some("DisasterRecovery") => Mode::DisasterRecovery,
        _ => Mode::Default,
    };
    let name = volume.store_name();
    let attempts = config.volume_attempts.max(1);
    let report = with_retries(attempts, &name, "push", || async {
        let repo = config.stores.open(&job).await?;
        let mut options = PushOptions::new(&name);
        options.mode = mode;
        push::push(&repo, &volume.path, &options, progress.clone()).await.map_err(|e| e.to_string())
    })
    .await?;
    pushed.do_send(VolumePushed { key: name.clone() });
    let path = with_retries(attempts, &name, "restore", || {
        config.destination.restore(&job, &volume, report.run)
    })
    .await?;
    let reason = crate::volumes::VolumeSent {
        full: report.full,
        run: report.run,
        files_changed: report.files_changed,
        bytes_sent: report.bytes_uploaded,
    }
    .to_string();
    Ok((report.bytes_total, path, reason))
}

/// Runs `step` up to `attempts` times, backing off from 1 s, doubling, to at most 30 s.
async fn with_retries<T, F, Fut>(
    attempts: u32,
    volume: &str,
    what: &str,
    mut step: F,
) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut backoff = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match step().await {
            Ok(done) => return Ok(done),
            Err(reason) if attempt >= attempts => {
                return Err(format!("{what}: {reason} (after {attempt} attempts)"));
            }
            Err(reason) => {
                tracing::warn!(volume, %reason, attempt, "volume {what} failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                attempt += 1;
            }
        }
    }
}
