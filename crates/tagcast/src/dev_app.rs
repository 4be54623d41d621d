//! The development app: with no config file, `tagcast serve` just works. Its key is generated
//! once and kept in the data directory, so UserSigs stay valid across restarts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tagcast_server::config::{AppConfig, Limits};

const FILE_NAME: &str = "dev-app.toml";
const DEV_SDKAPPID: u64 = 1_400_000_000;
const DEV_ADMIN: &str = "administrator";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DevApp {
    sdkappid: u64,
    secret_key: String,
    admin: String,
}

/// The development app, and where its key is kept.
#[derive(Debug, Clone)]
pub struct DevAppInfo {
    app: DevApp,
    path: PathBuf,
}

/// Loads the development app from `data_dir`, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<(AppConfig, DevAppInfo)> {
    let path = data_dir.join(FILE_NAME);
    let app = if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
    } else {
        let app = DevApp {
            sdkappid: DEV_SDKAPPID,
            secret_key: random_key(),
            admin: DEV_ADMIN.into(),
        };
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        std::fs::write(&path, toml::to_string(&app)?)
            .with_context(|| format!("writing {}", path.display()))?;
        app
    };
    let config = AppConfig {
        sdkappid: app.sdkappid,
        secret_key: app.secret_key.clone(),
        admins: vec![app.admin.clone()],
        limits: Limits::default(),
        callback_url: None,
        push_enabled: true,
    };
    Ok((config, DevAppInfo { app, path }))
}

/// 64 hex characters, the shape of a console secret key.
fn random_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prints the app's credentials and a ready-to-paste `curl` line for the bound address.
pub fn print_banner(info: &DevAppInfo, listen: SocketAddr, tls: bool) {
    let (app, path) = (&info.app, &info.path);
    let sig = tagcast_usersig::sign(
        app.sdkappid,
        &app.secret_key,
        &app.admin,
        tagcast_usersig::DEFAULT_EXPIRE_SECS,
        tagcast_server::now_unix(),
    );
    let scheme = if tls { "https" } else { "http" };
    println!(
        "No config file: serving the development app (kept in {}).",
        path.display()
    );
    println!("  sdkappid:   {}", app.sdkappid);
    println!("  admin:      {}", app.admin);
    println!("  secret key: {}", app.secret_key);
    println!("  usersig:    {sig}");
    println!("Try:");
    println!(
        "  curl -s -X POST '{scheme}://{listen}/v4/im_open_login_svc/account_import?sdkappid={}&identifier={}&usersig={sig}&random=1&contenttype=json' -d '{{\"UserID\":\"xiaoming\"}}'",
        app.sdkappid, app.admin
    );
}
