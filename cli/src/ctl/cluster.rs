//! `avocetctl cluster status|add-learner|promote|remove|barrier`: the scheduler group's membership.

use std::io::Write;
use std::process::ExitCode;

use avocet_proto::api::cluster_client::ClusterClient;
use avocet_proto::api::{
    AddLearnerRequest, BarrierRequest, ClusterStatusRequest, ClusterStatusResponse, MemberRole,
    PromoteRequest, RemoveRequest,
};
use tonic::transport::Channel;

use super::client::{TokenInterceptor, failed};
use super::{ClusterCommand, OutputFormat, ServerArgs};
use crate::output::Table;

type Client =
    ClusterClient<tonic::service::interceptor::InterceptedService<Channel, TokenInterceptor>>;

async fn connect(server: &ServerArgs) -> anyhow::Result<Client> {
    let (channel, interceptor) = super::client::channel(server).await?;
    Ok(ClusterClient::with_interceptor(channel, interceptor))
}

fn role(role: i32) -> &'static str {
    match MemberRole::try_from(role).unwrap_or(MemberRole::Unspecified) {
        MemberRole::Leader => "Leader",
        MemberRole::Follower => "Follower",
        MemberRole::Candidate => "Candidate",
        MemberRole::Learner => "Learner",
        MemberRole::Unspecified => "Unknown",
    }
}

/// Writes the status as JSON: `{"leaderId", "term", "commitIndex", "members": [...]}`.
fn write_json(status: &ClusterStatusResponse, out: &mut dyn Write) -> anyhow::Result<()> {
    let members: Vec<serde_json::Value> = status
        .members
        .iter()
        .map(|member| {
            serde_json::json!({
                "id": member.id,
                "address": member.address,
                "role": role(member.role),
                "matchedIndex": member.matched_index,
                "clockOffsetMs": member.clock_offset_ms,
            })
        })
        .collect();
    let json = serde_json::json!({
        "leaderId": (status.leader_id != 0).then_some(status.leader_id),
        "term": status.term,
        "commitIndex": status.commit_index,
        "members": members,
        "reportedBy": status.node_id,
        "clusterId": status.cluster_id,
    });
    serde_json::to_writer_pretty(&mut *out, &json)?;
    writeln!(out)?;
    Ok(())
}

fn write_table(status: &ClusterStatusResponse, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut summary = Table::new(&["LEADER", "TERM", "COMMIT-INDEX", "REPORTED-BY", "CLUSTER-ID"]);
    let leader =
        if status.leader_id == 0 { "none".to_owned() } else { status.leader_id.to_string() };
    summary.row(vec![
        leader,
        status.term.to_string(),
        status.commit_index.to_string(),
        status.node_id.to_string(),
        status.cluster_id.clone(),
    ]);
    summary.write(out)?;
    writeln!(out)?;
    let mut members = Table::new(&["ID", "ADDRESS", "ROLE", "MATCHED-INDEX", "CLOCK-OFFSET"]);
    for member in &status.members {
        members.row(vec![
            member.id.to_string(),
            member.address.clone(),
            role(member.role).to_owned(),
            member.matched_index.to_string(),
            member
                .clock_offset_ms
                .map_or_else(|| "unknown".to_owned(), |ms| format!("{:+.3}s", ms as f64 / 1000.0)),
        ]);
    }
    members.write(out)?;
    Ok(())
}

pub(super) fn run(
    server: &ServerArgs,
    command: ClusterCommand,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut client = connect(server).await?;
        match command {
            ClusterCommand::Status { output } => {
                let status = client
                    .status(ClusterStatusRequest {})
                    .await
                    .map_err(|status| failed(server, status))?
                    .into_inner();
                match output {
                    OutputFormat::Json => write_json(&status, out)?,
                    OutputFormat::Table => write_table(&status, out)?,
                }
            }
            ClusterCommand::AddLearner { id, address } => {
                client
                    .add_learner(AddLearnerRequest { id, address: address.clone() })
                    .await
                    .map_err(|status| failed(server, status))?;
                writeln!(out, "node {id} added as a learner at {address}")?;
            }
            ClusterCommand::Promote { id } => {
                client
                    .promote(PromoteRequest { id })
                    .await
                    .map_err(|status| failed(server, status))?;
                writeln!(out, "node {id} promoted to a voter")?;
            }
            ClusterCommand::Remove { id } => {
                client
                    .remove(RemoveRequest { id })
                    .await
                    .map_err(|status| failed(server, status))?;
                writeln!(out, "node {id} removed from the group")?;
            }
            ClusterCommand::Barrier => {
                let barrier = client
                    .barrier(BarrierRequest {})
                    .await
                    .map_err(|status| failed(server, status))?
                    .into_inner();
                writeln!(out, "committed at index {}", barrier.index)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use avocet_proto::api::Member;

    use super::*;

    #[test]
    fn json_has_the_documented_shape() {
        let status = ClusterStatusResponse {
            cluster_id: "4f1c0e2a".to_owned(),
            leader_id: 1,
            term: 3,
            commit_index: 42,
            node_id: 2,
            members: vec![Member {
                id: 1,
                address: "127.0.0.1:9010".into(),
                role: MemberRole::Leader.into(),
                matched_index: 42,
                clock_offset_ms: Some(-1_500),
            }],
        };
        let mut out = Vec::new();
        write_json(&status, &mut out).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"leaderId": 1, "term": 3, "commitIndex": 42, "reportedBy": 2,
                "clusterId": "4f1c0e2a",
                "members": [{"id": 1, "address": "127.0.0.1:9010", "role": "Leader", "matchedIndex": 42,
                    "clockOffsetMs": -1500}]})
        );
    }
}
