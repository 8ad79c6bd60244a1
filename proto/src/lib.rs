//! Protobuf at the edge: the public API (`avocet.api.v1`) and the Raft peer service
//! (`avocet.raft.v1`), two packages and two services so that client tokens never reach Raft.
//!
//! The `.proto` files live in `proto/proto/` and are compiled at build time by `build.rs` with
//! protox, a pure-Rust protobuf compiler: no `protoc` binary is installed or downloaded, so a
//! fresh clone builds anywhere cargo does. Generated code stays inside this crate; domain crates
//! never name prost types. Conversions between these messages and domain types live here too,
//! as `TryFrom` impls that validate (parse, don't validate), so bad input is rejected before it
//! reaches Raft. This crate grows with the consensus and scheduler issues; today it carries the
//! cluster status and the Raft transport envelope.

/// Generated code of the public API, `avocet.api.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod api {
    tonic::include_proto!("avocet.api.v1");
}

/// Generated code of the internal Raft peer service, `avocet.raft.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod raft {
    tonic::include_proto!("avocet.raft.v1");
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn messages_round_trip_through_the_wire_format() {
        let status = api::ClusterStatusResponse {
            cluster_id: "4f1c0e2a".to_owned(),
            leader_id: 1,
            term: 3,
            commit_index: 42,
            node_id: 1,
            members: vec![api::Member {
                id: 1,
                address: "127.0.0.1:9010".to_owned(),
                role: api::MemberRole::Leader.into(),
                matched_index: 42,
                clock_offset_ms: Some(-3),
            }],
        };
        let bytes = status.encode_to_vec();
        let decoded = api::ClusterStatusResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded, status);
        assert_eq!(decoded.members[0].role(), api::MemberRole::Leader);
        let envelope = raft::RaftMessage {
            format_version: 1,
            group_id: "g".to_owned(),
            from: 2,
            body: vec![1, 2, 3],
            clock_micros: 1_764_000_000_000_000,
        };
        assert_eq!(
            raft::RaftMessage::decode(envelope.encode_to_vec().as_slice()).unwrap(),
            envelope
        );
    }
}
