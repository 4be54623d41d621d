use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn add_then_get_tag_over_http() {
    let server = Server::start();
    import(&server, &APP, &["xiaoming"]).await;
    add_tags(&server, &APP, "xiaoming", &["GoldMember"]).await;
    let r = server
        .ok(&APP, "timpush/get_tag", accounts_body(&["xiaoming"]))
        .await;
    assert_eq!(
        r["UserTags"],
        json!([{"To_Account": "xiaoming", "Tags": ["GoldMember"]}])
    );
}
