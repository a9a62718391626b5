//! Clinicians at two sites hold a conversation through their own nodes'
//! web pages, over real libp2p connections on loopback: a clinician at B
//! signs in and asks; a clinician at C, on another node, sees it among the
//! open questions and answers; B sees the answer and marks it resolved; C
//! sees it resolved. Every post is signed by the person's own key, made
//! and delegated at their site after the network formed.

mod common;

use common::WebUser;
use gatehouse_tests::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clinicians_at_two_sites_ask_answer_and_resolve_through_their_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::new(dir.path(), 3).expect("cluster");
    let nodes = cluster.start_all().await.expect("start");
    let (b, c) = (&nodes[1], &nodes[2]);
    let patel = WebUser::clinician(b, &cluster.homes[1], "Dr A Patel").await;
    let okafor = WebUser::clinician(c, &cluster.homes[2], "Nurse B Okafor").await;

    let thread = patel
        .post(
            "/questions/ask",
            "/questions",
            &[
                ("title", "Gabapentinoid diversion on a Cat C wing"),
                ("body", "How do you manage it?"),
                ("pathway", "pharmacy-medicines"),
                ("urgency", "within-a-week"),
            ],
        )
        .await;
    // C's clinician finds it among the open questions, signed at B.
    let took = okafor
        .sees("/questions", "Gabapentinoid diversion on a Cat C wing")
        .await;
    eprintln!("asked at B, listed at C after {took:?}");
    assert!(
        okafor
            .get(&thread)
            .await
            .contains("Dr A Patel (clinician), HMP Site 1")
    );
    okafor
        .post(
            &thread,
            &format!("{thread}/reply"),
            &[(
                "body",
                "Supervised liquid formulations, and a wing-based check.",
            )],
        )
        .await;
    let took = patel
        .sees(&thread, "Nurse B Okafor (clinician), HMP Site 2")
        .await;
    eprintln!("answered at C, shown at B after {took:?}");
    // B marks the answer that resolved it.
    let page = patel.get(&thread).await;
    let at = page
        .find("name=\"answer\" value=\"")
        .expect("a resolve button")
        + 21;
    let answer = page[at..at + 64].to_string();
    patel
        .post(
            &thread,
            &format!("{thread}/resolve"),
            &[("answer", &answer)],
        )
        .await;
    let took = okafor
        .sees(&thread, "This answer resolved the question")
        .await;
    eprintln!("resolved at B, shown at C after {took:?}");
    okafor
        .sees("/questions?list=answered", "Gabapentinoid diversion")
        .await;
    for n in &nodes {
        n.stop().await;
    }
}
