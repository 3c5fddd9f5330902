//! A real SSM-compatible server: `moto_server` from PyPI, installed by `make venv` into
//! `.venv`, started once per test binary on a free port, and stopped with the test process.

use aws_sdk_ssm::types::ParameterType;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

/// The running server.
pub struct Moto {
    pub endpoint: String,
}

/// Where `moto_server` is: `$MOTO_SERVER`, else the project's `.venv`.
fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// The shared server, started on first use. Fails the test with instructions if moto is missing.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let binary = moto_binary();
        assert!(
            binary.exists(),
            "moto_server not found at {}: run `make venv` (it installs the pinned moto[server] into .venv), \
             or set MOTO_SERVER to its path",
            binary.display()
        );
        let port = free_port();
        let log = std::fs::File::create(std::env::temp_dir().join(format!("moto-{port}.log"))).ok();
        let (sender, receiver) = std::sync::mpsc::channel();
        // The child is spawned from a thread that lives as long as the process: Linux sends
        // PR_SET_PDEATHSIG when the *spawning thread* ends, and test threads end early.
        std::thread::spawn(move || {
            let mut command = Command::new(&binary);
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdin(Stdio::null());
            match log {
                Some(file) => command.stdout(Stdio::null()).stderr(file),
                None => command.stdout(Stdio::null()).stderr(Stdio::null()),
            };
            // SAFETY: prctl is async-signal-safe and touches only the child's own state.
            unsafe {
                use std::os::unix::process::CommandExt;
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = command.spawn();
            let started = child.is_ok();
            let _ = sender.send(child.map(|_| ()).map_err(|e| e.to_string()));
            if started {
                loop {
                    std::thread::park();
                }
            }
        });
        match receiver.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("could not start moto_server: {error}"),
            Err(_) => panic!("could not start moto_server"),
        }
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start listening on port {port} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { endpoint: format!("http://127.0.0.1:{port}") }
    })
}

impl Moto {
    /// An SSM client for this server (test credentials, fixed region).
    pub async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&sdk_config(&self.endpoint).load().await)
    }

    /// Environment for a process that should talk to this server through the standard variables.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// A parameter as stored: value, type and version.
#[derive(Debug, Clone)]
pub struct Stored {
    pub value: String,
    pub kind: ParameterType,
    pub version: i64,
}

/// Reads a parameter back (decrypted), or `None` if it does not exist.
pub async fn read(ssm: &aws_sdk_ssm::Client, name: &str) -> Option<Stored> {
    let output = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .ok()?;
    let parameter = output.parameter?;
    Some(Stored {
        value: parameter.value?,
        kind: parameter.r#type.unwrap_or(ParameterType::String),
        version: parameter.version,
    })
}

/// Stores a SecureString, as an operator would with `aws ssm put-parameter`.
pub async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("put_parameter on moto");
}

/// A parameter prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    let random: u32 = rand::random();
    format!("/gmail-oauth-test/{test}-{random:08x}")
}

/// The SDK configuration of the tests' clients: the functions' HTTPS client, test
/// credentials and the fixed region, pointed at `endpoint` (moto, or a proxy in front of it).
pub fn sdk_config(endpoint: &str) -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(gmail_oauth::store::sdk_http_client())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
}
