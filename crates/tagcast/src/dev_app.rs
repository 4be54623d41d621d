//! The development app: with no config file, `tagcast serve` just works. Its key is generated
//! once and kept in the data directory, so UserSigs stay valid across restarts.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tagcast_server::config::{AppConfig, Limits};

const FILE_NAME: &str = "dev-app.toml";
const DEV_SDKAPPID: u64 = 1_400_000_000;
const DEV_ADMIN: &str = "administrator";

#[derive(Debug, Serialize, Deserialize)]
struct DevApp {
    sdkappid: u64,
    secret_key: String,
    admin: String,
}

/// Loads the development app from `data_dir`, creating it on first start, and prints how to use it.
pub fn load_or_create(data_dir: &Path, listen: SocketAddr, tls: bool) -> anyhow::Result<AppConfig> {
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
    print_banner(&app, listen, tls, &path);
    Ok(AppConfig {
        sdkappid: app.sdkappid,
        secret_key: app.secret_key,
        admins: vec![app.admin],
        limits: Limits::default(),
    })
}

/// 64 hex characters, the shape of a console secret key.
fn random_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn print_banner(app: &DevApp, listen: SocketAddr, tls: bool, path: &Path) {
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
