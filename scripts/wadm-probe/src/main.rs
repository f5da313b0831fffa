//! wadm-probe <nats-url> <lattice> <command> [args]: one wadm-client call, result as JSON.
use anyhow::{bail, Context, Result};
use wadm_client::{Client, ClientConnectOptions};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        bail!("usage: wadm-probe <nats-url> <lattice> put <file> | deploy <name> [version] | list | status <name> | undeploy <name> | delete <name> [version] | get <name> | versions <name>");
    }
    let opts = ClientConnectOptions { url: Some(args[1].clone()), ..Default::default() };
    let client = Client::new(&args[2], None, opts).await?;
    let arg = |i: usize| args.get(i).map(String::as_str);
    let out = match args[3].as_str() {
        "put" => {
            let bytes = std::fs::read(arg(4).context("put needs a file")?)?;
            let (name, version) = client.put_manifest(bytes).await?;
            serde_json::json!({ "name": name, "version": version })
        }
        "deploy" => {
            let (name, version) = client.deploy_manifest(arg(4).context("name")?, arg(5)).await?;
            serde_json::json!({ "name": name, "version": version })
        }
        "list" => serde_json::to_value(client.list_manifests().await?)?,
        "status" => serde_json::to_value(client.get_manifest_status(arg(4).context("name")?).await?)?,
        "undeploy" => serde_json::json!({ "name": client.undeploy_manifest(arg(4).context("name")?).await? }),
        "delete" => serde_json::json!({ "deleted": client.delete_manifest(arg(4).context("name")?, arg(5)).await? }),
        "get" => serde_json::to_value(client.get_manifest(arg(4).context("name")?, None).await?)?,
        "versions" => serde_json::to_value(client.list_versions(arg(4).context("name")?).await?)?,
        other => bail!("unknown command {other}"),
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
