//! The worker side of the hand-off against a real one-node `serve`: a run reports progress and
//! completes under its fencing token; a run whose migration is cancelled loses its lease and is
//! abandoned without completing anything.

// Test helpers run outside #[test] functions, where clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::time::Duration;

use tokio::sync::mpsc;

use avocet_proto::api::catalog_client::CatalogClient;
use avocet_proto::api::{ApplyRequest, CancelMigrationRequest, GetRequest};
use avocet_server::dispatch::{
    self, Finished, Job, MigrationExecutor, Pass, StageReport, WorkerSettings,
};
use avocet_server::{ServeConfig, ServeFlags};
use avocet_types::migration::{MigrationStage, MigrationStatusType};

const ADMIN: &str = "admin";
const WORKER: &str = "worker";

fn port() -> String {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

/// Copies nothing, but says so honestly: reports two stages, then the result it was built with.
struct Scripted {
    result: MigrationStatusType,
    hold: Duration,
}

impl MigrationExecutor for Scripted {
    async fn execute(&self, job: Job, progress: mpsc::Sender<StageReport>) -> Finished {
        assert_eq!(job.migration.spec.cluster_pair, "remote");
        let report = StageReport {
            stage: MigrationStage::Volumes,
            bytes: (5, 10),
            objects: (0, 3),
            bytes_per_second: 5,
            eta_seconds: 1,
        };
        progress.send(report).await.unwrap();
        tokio::time::sleep(self.hold).await;
        let last = StageReport {
            stage: MigrationStage::Applications,
            bytes: (10, 10),
            objects: (3, 3),
            bytes_per_second: 5,
            eta_seconds: 0,
        };
        progress.send(last).await.unwrap();
        Finished { status: self.result, last: Some(last), ..Finished::default() }
    }
}

fn migration(name: &str) -> String {
    format!(
        "apiVersion: stork.libopenstorage.org/v1alpha1\nkind: Migration\nmetadata: {{name: {name}, namespace: apps}}\nspec: {{clusterPair: remote, namespaces: [apps]}}\n"
    )
}

fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_completes_under_its_token_and_abandons_a_lost_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (api, raft) = (port(), port());
    let config = ServeConfig::resolve(ServeFlags {
        id: Some(1),
        listen: Some(api.clone()),
        raft_listen: Some(raft.clone()),
        peers: Some(format!("1={raft}")),
        data_dir: Some(dir.path().join("node")),
        bootstrap: true,
        admin_token: Some(ADMIN.into()),
        peer_token: Some("peer".into()),
        worker_token: Some(WORKER.into()),
        metrics_listen: Some("127.0.0.1:0".into()),
        ..ServeFlags::default()
    })
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(avocet_server::serve(config, async {
        let _ = stopped.await;
    }));
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{api}")).unwrap();
    let channel = loop {
        if let Ok(channel) = endpoint.connect().await {
            break channel;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut catalog = CatalogClient::new(channel.clone());
    let mut workers = dispatch::client(channel.clone(), WORKER).unwrap();
    let settings = WorkerSettings {
        name: "w1".into(),
        lease_ms: 3_000,
        renew_every: Duration::from_millis(100),
        idle_poll: Duration::from_millis(50),
    };

    // --- the worker token opens the worker calls but not the catalog
    let refused = CatalogClient::new(channel.clone())
        .get(authorized(
            GetRequest { kind: "migration".into(), namespace: "apps".into(), name: "x".into() },
            WORKER,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // --- nothing queued: idle (retrying while the new group elects itself)
    let idle = loop {
        match dispatch::run_once(
            &mut workers,
            &settings,
            &Scripted { result: MigrationStatusType::Successful, hold: Duration::ZERO },
        )
        .await
        {
            Ok(pass) => break pass,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(idle, Pass::Idle);

    // --- a one-off migration runs, reports, and completes under its token
    catalog
        .apply(authorized(ApplyRequest { text: migration("first"), ..Default::default() }, ADMIN))
        .await
        .unwrap();
    let executor =
        Scripted { result: MigrationStatusType::PartialSuccess, hold: Duration::from_millis(300) };
    let pass = dispatch::run_once(&mut workers, &settings, &executor).await.unwrap();
    assert_eq!(pass, Pass::Completed("first".into(), MigrationStatusType::PartialSuccess));
    let object = catalog
        .get(authorized(
            GetRequest { kind: "migration".into(), namespace: "apps".into(), name: "first".into() },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    let json: serde_json::Value = serde_json::from_str(&object.json).unwrap();
    assert_eq!(json["status"]["status"], "PartialSuccess");
    assert_eq!(json["status"]["stage"], "Final");
    assert_eq!(json["status"]["summary"]["numOfMigratedResources"], 3);
    assert!(json["status"]["volumeMigrationFinishTimestamp"].is_string(), "{json}");

    // --- a migration cancelled while it runs: the lease is gone, the run is abandoned
    catalog
        .apply(authorized(ApplyRequest { text: migration("second"), ..Default::default() }, ADMIN))
        .await
        .unwrap();
    let slow = Scripted { result: MigrationStatusType::Successful, hold: Duration::from_secs(20) };
    let mut worker = dispatch::client(channel.clone(), WORKER).unwrap();
    let run = tokio::spawn(async move { dispatch::run_once(&mut worker, &settings, &slow).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    catalog
        .cancel_migration(authorized(
            CancelMigrationRequest { namespace: "apps".into(), name: "second".into() },
            ADMIN,
        ))
        .await
        .unwrap();
    let pass = tokio::time::timeout(Duration::from_secs(5), run).await.unwrap().unwrap().unwrap();
    assert!(
        matches!(&pass, Pass::Abandoned(name, reason) if name == "second" && reason.contains("stale")),
        "{pass:?}"
    );
    let object = catalog
        .get(authorized(
            GetRequest {
                kind: "migration".into(),
                namespace: "apps".into(),
                name: "second".into(),
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    let json: serde_json::Value = serde_json::from_str(&object.json).unwrap();
    assert_eq!(
        json["status"]["status"], "Failed",
        "cancelled, never completed by the stale worker"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
