use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn add_then_get_tag_over_http() {
    let server = Server::start();
    import(&server, &APP, &["xiaoming"]).await;
    let r = server
        .call(
            &APP,
            "timpush/add_tag",
            json!({"UserTags": [{"To_Account": "xiaoming", "Tags": ["GoldMember"]}]}),
        )
        .await;
    assert_ok(&r);
    let r = server
        .call(&APP, "timpush/get_tag", json!({"To_Account": ["xiaoming"]}))
        .await;
    assert_ok(&r);
    assert_eq!(
        r["UserTags"],
        json!([{"To_Account": "xiaoming", "Tags": ["GoldMember"]}])
    );
}
