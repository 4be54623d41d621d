//! `tagcast listen`: a minimal client that connects as one account and prints what it receives.

use anyhow::{Context, bail};
use futures_util::StreamExt;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio_tungstenite::tungstenite::Message;

use crate::cli::ListenArgs;

pub async fn listen(args: ListenArgs) -> anyhow::Result<()> {
    let usersig = match (&args.usersig, &args.key) {
        (Some(sig), _) => sig.clone(),
        (None, Some(key)) => tagcast_usersig::sign(
            args.sdkappid,
            key,
            &args.identifier,
            tagcast_usersig::DEFAULT_EXPIRE_SECS,
            tagcast_server::now_unix(),
        ),
        (None, None) => bail!("--key or --usersig is required"),
    };
    let url = websocket_url(&args.url, args.sdkappid, &args.identifier, &usersig)?;
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("connecting to {}", args.url))?;
    while let Some(message) = socket.next().await {
        match message.context("reading from the server")? {
            Message::Text(frame) => println!("{frame}"),
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

/// `http://host` becomes `ws://host/ws?...` (`https` becomes `wss`).
fn websocket_url(
    base: &str,
    sdkappid: u64,
    identifier: &str,
    usersig: &str,
) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_string()
    } else {
        bail!("--url must start with http://, https://, ws:// or wss://");
    };
    let identifier = utf8_percent_encode(identifier, NON_ALPHANUMERIC);
    Ok(format!(
        "{base}/ws?sdkappid={sdkappid}&identifier={identifier}&usersig={usersig}&contenttype=json"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_map_to_the_websocket_endpoint() {
        let url = websocket_url("http://127.0.0.1:8080/", 1, "小明 a", "sig").unwrap();
        assert_eq!(
            url,
            "ws://127.0.0.1:8080/ws?sdkappid=1&identifier=%E5%B0%8F%E6%98%8E%20a&usersig=sig&contenttype=json"
        );
        assert!(
            websocket_url("https://h", 1, "a", "s")
                .unwrap()
                .starts_with("wss://h/ws?")
        );
        assert!(websocket_url("ftp://h", 1, "a", "s").is_err());
    }
}
