//! A Mosquitto of the benchmark's own: started on a free port with `deploy/mosquitto/cityops.conf`,
//! stopped when dropped. The machine's shared Mosquitto keeps its defaults, which drop QoS 1 messages
//! past 1000 queued per subscriber, so it cannot show "nothing lost" under a burst.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

const CONFIG: &str = include_str!("../../../../deploy/mosquitto/cityops.conf");

pub struct Mosquitto {
    pub port: u16,
    child: Child,
    _dir: std::path::PathBuf,
}

impl Mosquitto {
    pub fn spawn() -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!(
            "cityops-bench-mosquitto-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("mosquitto.conf");
        std::fs::write(&config, format!("{CONFIG}\nlistener {port} 127.0.0.1\n"))?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("Failed to start mosquitto (is it installed? scripts/test.sh installs it)")?;
        let mosquitto = Self {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "mosquitto did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(mosquitto)
    }

    /// The broker's process, for its CPU time.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}
