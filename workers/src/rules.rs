//! Stork's PreExecRule and PostExecRule: the commands of a Rule run through `pods/exec` in the
//! selected pods of each migrated namespace (stork-semantics.md §1.7).
//!
//! - Pods are those of the namespace whose labels match an item's `podSelector` and whose
//!   `status.phase` is `Running`, in name order; `runInSinglePod` takes the first. An item
//!   that selects no pod runs nothing, as in Stork.
//! - Commands run as `sh -c VALUE` in the item's `container` (else the pod's first).
//! - A foreground command that fails is run again, up to [`RuleSettings::attempts`] times,
//!   [`RuleSettings::retry_after`] apart (Stork: 12 times, 5 s apart).
//! - A background command (pre-exec rules only) must contain `${WAIT_CMD}`, which becomes
//!   `sh /tmp/avocet-rule-….sh`, a script written into the pod first: it marks itself ready,
//!   then waits for a release marker, at most [`RuleSettings::hold_limit`] (Stork: 900 s), so
//!   the command holds whatever it took (a table lock, say) until [`Held::release`], and never
//!   forever when the worker dies. The rule waits until every background command is ready, at
//!   most [`RuleSettings::background_timeout`]; a command that ends before it gets there fails
//!   the rule, and so does one that ended before its release (its hold ran out). A hold
//!   dropped unreleased (a cancelled migration) lets its command go from a detached task.
//! - A foreground command gets [`RuleSettings::command_timeout`] (10 min) a run.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{AttachParams, ListParams};
use tokio::io::AsyncReadExt;

use avocet_types::rule::{Rule, WAIT_CMD};

/// Says how rules run.
#[derive(Debug, Clone, Copy)]
pub struct RuleSettings {
    /// Runs a failing foreground command at most this many times.
    pub attempts: u32,
    /// Waits this long between attempts.
    pub retry_after: Duration,
    /// Waits at most this long for a background command to reach `${WAIT_CMD}`.
    pub background_timeout: Duration,
    /// Lets a background command hold at most this long past `${WAIT_CMD}`.
    pub hold_limit: Duration,
    /// Gives one run of a foreground command at most this long.
    pub command_timeout: Duration,
}

impl Default for RuleSettings {
    /// Returns Stork's: 12 attempts 5 s apart, 900 s for background commands.
    fn default() -> Self {
        RuleSettings {
            attempts: 12,
            retry_after: Duration::from_secs(5),
            background_timeout: Duration::from_secs(900),
            hold_limit: Duration::from_secs(900),
            command_timeout: Duration::from_secs(600),
        }
    }
}

/// How often the ready marker of a background command is looked for.
const READY_POLL: Duration = Duration::from_millis(200);

/// Caps how long a released background command may take to end.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a command printed and how it ended.
#[derive(Debug)]
struct Ran {
    stdout: String,
    stderr: String,
    /// `None` when the command succeeded; else the API's message.
    failure: Option<String>,
}

impl Ran {
    /// Describes a failure in one line: the API's message and the end of stderr.
    fn describe(&self) -> String {
        let failure = self.failure.as_deref().unwrap_or("succeeded");
        let stderr = self.stderr.trim();
        let tail: String =
            stderr.chars().rev().take(300).collect::<Vec<_>>().into_iter().rev().collect();
        match tail.is_empty() {
            true => failure.to_owned(),
            false => format!("{failure}; stderr: {tail}"),
        }
    }
}

/// Runs `argv` in `container` of pod `pod` and waits for it to end.
async fn exec(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    argv: Vec<String>,
) -> Result<Ran, String> {
    let params =
        AttachParams::default().container(container).stdin(false).stdout(true).stderr(true);
    let mut attached =
        pods.exec(pod, argv, &params).await.map_err(|e| format!("exec in pod {pod}: {e}"))?;
    let status = attached.take_status();
    let (mut out, mut err) = (attached.stdout(), attached.stderr());
    let read_out = async {
        let mut text = String::new();
        if let Some(out) = out.as_mut() {
            let _ = out.read_to_string(&mut text).await;
        }
        text
    };
    let read_err = async {
        let mut text = String::new();
        if let Some(err) = err.as_mut() {
            let _ = err.read_to_string(&mut text).await;
        }
        text
    };
    let (stdout, stderr) = tokio::join!(read_out, read_err);
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    let _ = attached.join().await;
    let failure = match status {
        Some(status) if status.status.as_deref() == Some("Success") => None,
        Some(status) => Some(status.message.unwrap_or_else(|| "the command failed".to_owned())),
        None => Some("the connection ended without the command's exit status".to_owned()),
    };
    Ok(Ran { stdout, stderr, failure })
}

fn shell(command: &str) -> Vec<String> {
    vec!["sh".to_owned(), "-c".to_owned(), command.to_owned()]
}

/// The pods an item selects in `namespace`: Running, in name order.
async fn selected(
    pods: &Api<Pod>,
    selector: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<Pod>, String> {
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let listed = pods
        .list(&ListParams::default().labels(&labels.join(",")))
        .await
        .map_err(|e| format!("listing pods with labels {}: {e}", labels.join(",")))?;
    let mut running: Vec<Pod> = listed
        .items
        .into_iter()
        .filter(|pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect();
    running.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    Ok(running)
}

/// One background command that holds until released. Dropped unreleased (its task aborted,
/// its actor stopped), it still lets the command go, from a detached task.
#[derive(Debug)]
struct Hold {
    namespace: String,
    pod: String,
    container: String,
    /// The marker whose creation lets the command go on.
    release: String,
    /// The marker the script leaves when its hold ran out before the release.
    expired: String,
    task: Option<tokio::task::JoinHandle<Result<Ran, String>>>,
    pods: Api<Pod>,
    released: bool,
}

impl Hold {
    /// Creates the release marker, unless the hold already ran out.
    fn release_command(&self) -> Vec<String> {
        shell(&format!(
            "if [ -e {0} ]; then rm -f {0}; echo 'its hold ran out before the release' >&2; exit 1; fi; touch {1}",
            self.expired, self.release
        ))
    }

    fn place(&self) -> String {
        format!("background command in pod {}/{}", self.namespace, self.pod)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (pods, pod, container) =
                (self.pods.clone(), self.pod.clone(), self.container.clone());
            let command = self.release_command();
            runtime.spawn(async move {
                if let Err(error) = exec(&pods, &pod, &container, command).await {
                    tracing::warn!(pod, %error, "letting a dropped background command go");
                }
            });
        }
    }
}

/// The background commands of a pre-exec rule, holding until [`Held::release`].
#[derive(Debug, Default)]
pub struct Held {
    holds: Vec<Hold>,
}

/// Holds the background commands a running rule has started so far, shared with whoever
/// must release them should the rule's task be cancelled.
pub type Holding = std::sync::Arc<std::sync::Mutex<Held>>;

/// Takes what `holding` holds, leaving it empty.
pub fn take(holding: &Holding) -> Held {
    std::mem::take(&mut *holding.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
}

impl Held {
    /// Says whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    /// Lets every background command go on past `${WAIT_CMD}` (all at once), then waits for
    /// each to end; returns the first failure, after releasing all. A command whose hold ran
    /// out before its release fails it: the volumes may have been read without it.
    pub async fn release(mut self) -> Result<(), String> {
        let mut failures = Vec::new();
        let mut waiting = Vec::new();
        for mut hold in std::mem::take(&mut self.holds) {
            hold.released = true;
            let touched =
                exec(&hold.pods, &hold.pod, &hold.container, hold.release_command()).await;
            match touched {
                Ok(ran) if ran.failure.is_none() => waiting.push(hold),
                Ok(ran) => failures.push(format!("{}: {}", hold.place(), ran.describe())),
                Err(error) => failures.push(format!("{}: {error}", hold.place())),
            }
        }
        for mut hold in waiting {
            let Some(task) = hold.task.take() else { continue };
            let outcome = match tokio::time::timeout(RELEASE_TIMEOUT, task).await {
                Err(_) => Err(format!("it did not end within {RELEASE_TIMEOUT:?} of its release")),
                Ok(Err(joined)) => Err(format!("its task stopped: {joined}")),
                Ok(Ok(Err(error))) => Err(error),
                Ok(Ok(Ok(ran))) if ran.failure.is_some() => Err(ran.describe()),
                Ok(Ok(Ok(_))) => Ok(()),
            };
            if let Err(reason) = outcome {
                failures.push(format!("{}: {reason}", hold.place()));
            }
        }
        failures.into_iter().next().map_or(Ok(()), Err)
    }
}

/// Names what runs: the field (`spec.preExecRule`) and the migration it runs for.
#[derive(Debug, Clone, Copy)]
pub struct RuleContext<'a> {
    /// The migration's field that names the rule.
    pub field: &'a str,
    /// Makes marker files unique: the lease's fencing token.
    pub token: u64,
    /// Says whether background actions are allowed (pre-exec rules only).
    pub background_allowed: bool,
}

/// Runs `rule` in every namespace of `namespaces`, adding the background commands it starts
/// to `holding` (release them after the volumes are copied, also when the migration fails).
pub async fn run_rule(
    client: &kube::Client,
    rule: &Rule,
    namespaces: &[String],
    context: RuleContext<'_>,
    settings: &RuleSettings,
    holding: &Holding,
) -> Result<(), String> {
    let name = rule.metadata.name.as_deref().unwrap_or_default();
    // A post-exec rule with a background action runs nothing at all.
    if !context.background_allowed {
        for (i, item) in rule.rules.iter().enumerate() {
            if let Some(j) = item.actions.iter().position(|action| action.background) {
                return Err(format!(
                    "{} {name:?}: rules[{i}].actions[{j}].background is true, but background actions are not allowed in a post-exec rule",
                    context.field
                ));
            }
        }
    }
    match run_all(client, rule, namespaces, context, settings, holding).await {
        Ok(()) => Ok(()),
        Err(reason) => {
            // Whatever was taken is let go before the failure is reported.
            let _ = take(holding).release().await;
            Err(format!("{} {name:?}: {reason}", context.field))
        }
    }
}

async fn run_all(
    client: &kube::Client,
    rule: &Rule,
    namespaces: &[String],
    context: RuleContext<'_>,
    settings: &RuleSettings,
    holding: &Holding,
) -> Result<(), String> {
    for namespace in namespaces {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        for (i, item) in rule.rules.iter().enumerate() {
            let chosen = selected(&pods, &item.pod_selector).await?;
            for (j, action) in item.actions.iter().enumerate() {
                let at = format!("rules[{i}].actions[{j}]");
                let targets = if action.run_in_single_pod {
                    &chosen[..chosen.len().min(1)]
                } else {
                    &chosen[..]
                };
                for pod in targets {
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    let container = match item.container.as_str() {
                        "" => pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.first())
                            .map(|c| c.name.clone())
                            .unwrap_or_default(),
                        named => named.to_owned(),
                    };
                    if action.background {
                        let marker = format!(
                            "/tmp/avocet-rule-{}-{}-{i}-{j}",
                            context.token,
                            avocet_transfer::seal::random_name()
                        );
                        let hold = start_background(
                            &pods,
                            namespace,
                            &pod_name,
                            &container,
                            &action.value,
                            &marker,
                            settings,
                        )
                        .await
                        .map_err(|reason| {
                            format!("{at} in pod {namespace}/{pod_name}: {reason}")
                        })?;
                        holding
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .holds
                            .push(hold);
                    } else {
                        run_foreground(&pods, &pod_name, &container, &action.value, settings)
                            .await
                            .map_err(|reason| {
                                format!("{at} in pod {namespace}/{pod_name}: {reason}")
                            })?;
                    }
                }
            }
        }
    }
    Ok(())
}

async fn run_foreground(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    command: &str,
    settings: &RuleSettings,
) -> Result<(), String> {
    let attempts = settings.attempts.max(1);
    let mut attempt = 1;
    loop {
        let ran = tokio::time::timeout(
            settings.command_timeout,
            exec(pods, pod, container, shell(command)),
        )
        .await
        .unwrap_or_else(|_| Err(format!("it did not end within {:?}", settings.command_timeout)));
        let problem = match ran {
            Ok(ran) if ran.failure.is_none() => {
                tracing::debug!(pod, stdout = %ran.stdout.trim(), "rule command succeeded");
                return Ok(());
            }
            Ok(ran) => ran.describe(),
            Err(error) => error,
        };
        if attempt >= attempts {
            return Err(format!("{problem} (after {attempt} attempts)"));
        }
        tracing::warn!(pod, %problem, attempt, "rule command failed; retrying");
        tokio::time::sleep(settings.retry_after).await;
        attempt += 1;
    }
}

#[allow(clippy::too_many_arguments)]
async fn start_background(
    pods: &Api<Pod>,
    namespace: &str,
    pod: &str,
    container: &str,
    command: &str,
    marker: &str,
    settings: &RuleSettings,
) -> Result<Hold, String> {
    let (ready, release, expired, script) = (
        format!("{marker}.ready"),
        format!("{marker}.release"),
        format!("{marker}.expired"),
        format!("{marker}.sh"),
    );
    let polls = (settings.hold_limit.as_millis() / READY_POLL.as_millis()).max(1);
    let body = format!(
        "touch {ready}\ni=0\nwhile [ ! -e {release} ] && [ \"$i\" -lt {polls} ]; do sleep 0.2; i=$((i+1)); done\nif [ ! -e {release} ]; then touch {expired}; fi\nrm -f {ready} {release} {script}\n"
    );
    // The script goes in through argv, so no quoting of it can go wrong.
    let write = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "printf '%s' \"$1\" > \"$2\"".to_owned(),
        "sh".to_owned(),
        body,
        script.clone(),
    ];
    match exec(pods, pod, container, write).await {
        Ok(ran) if ran.failure.is_none() => {}
        Ok(ran) => return Err(format!("writing {script}: {}", ran.describe())),
        Err(error) => return Err(format!("writing {script}: {error}")),
    }
    let substituted = command.replace(WAIT_CMD, &format!("sh {script}"));
    let task = {
        let (pods, pod, container) = (pods.clone(), pod.to_owned(), container.to_owned());
        tokio::spawn(async move { exec(&pods, &pod, &container, shell(&substituted)).await })
    };
    // From here on, dropping the hold (this future aborted, say) lets the command go.
    let mut hold = Hold {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        container: container.to_owned(),
        release,
        expired,
        task: Some(task),
        pods: pods.clone(),
        released: false,
    };
    let polls = (settings.background_timeout.as_millis() / READY_POLL.as_millis()).max(1);
    for _ in 0..polls {
        if let Some(task) = hold.task.take_if(|task| task.is_finished()) {
            hold.released = true;
            let ended = match task.await {
                Ok(Ok(ran)) => ran.describe(),
                Ok(Err(error)) => error,
                Err(joined) => joined.to_string(),
            };
            return Err(format!(
                "the background command ended before it reached {WAIT_CMD}: {ended}"
            ));
        }
        let probe = exec(pods, pod, container, shell(&format!("test -e {ready}"))).await;
        if matches!(&probe, Ok(ran) if ran.failure.is_none()) {
            return Ok(hold);
        }
        tokio::time::sleep(READY_POLL).await;
    }
    let waited = settings.background_timeout;
    let _ = Held { holds: vec![hold] }.release().await;
    Err(format!("the background command did not reach {WAIT_CMD} within {waited:?}"))
}
