//! Three `avocet serve` processes: the leader is killed with SIGKILL, a new leader takes over and
//! accepts writes; the killed node restarts and catches up; SIGTERM stops every node cleanly.

use std::time::Duration;

use crate::group::Group;

#[test]
fn a_killed_leader_is_replaced_and_catches_up_after_restart() {
    // --- three processes elect a leader and commit a write through a follower
    let mut group = Group::start(3);
    let leader = group.leader(Duration::from_secs(30));
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let (ok, out, err) = group.ctl(follower, &["cluster", "barrier"]);
    assert!(ok && out.starts_with("committed at index "), "{out}{err}");

    // --- SIGKILL the leader: the survivors elect a new one that accepts writes
    group.kill(leader);
    let new_leader = group.leader(Duration::from_secs(15));
    assert_ne!(new_leader, leader);
    let (ok, out, err) = group.ctl(new_leader, &["cluster", "barrier"]);
    assert!(ok, "{out}{err}");

    // --- the killed node restarts with the same command line and catches up
    group.spawn(leader);
    let caught_up = group.eventually(Duration::from_secs(20), "restarted node caught up", || {
        let status = group.status(new_leader)?;
        let commit = status["commitIndex"].as_u64()?;
        let member = status["members"].as_array()?.iter().find(|m| m["id"] == leader)?.clone();
        let own = group.status(leader)?;
        (member["matchedIndex"].as_u64()? >= commit && own["leaderId"].as_u64() == Some(new_leader))
            .then_some(commit)
    });
    assert!(
        caught_up >= 3,
        "two barriers and two leaders' blank entries were committed: {caught_up}"
    );

    // --- the table names every member and its role
    let (ok, table, _) = group.ctl(leader, &["cluster", "status"]);
    assert!(ok);
    assert!(
        table.contains("ROLE")
            && table.contains("Leader")
            && table.matches("Follower").count() == 2,
        "{table}"
    );

    // --- a wrong token is refused with a clear message
    let (ok, _, err) = group.ctl(leader, &["--token", "nope", "cluster", "status"]);
    assert!(!ok && err.contains("wrong token"), "{err}");

    // --- SIGTERM: every node stops on its own (the leader hands over first)
    let clean = group.terminate_all();
    assert!(clean.iter().all(|exited| *exited), "{clean:?}");
}
