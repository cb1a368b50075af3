//! The bootstrap binary as a process, run the way Lambda runs it, and the command line.

use super::*;

/// The bootstrap binary, run the way Lambda runs it, against a Runtime API stand-in.
pub struct Function {
    pub api: runtime_api::RuntimeApi,
    child: tokio::process::Child,
    /// Everything the function printed (its log lines), as it prints it.
    pub output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Function {
    /// The release build when `ECR_RETAG_BOOTSTRAP` names it (./scripts/test does), else the test build.
    pub fn binary() -> PathBuf {
        std::env::var_os("ECR_RETAG_BOOTSTRAP").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_bootstrap").into())
    }

    /// The command line: the release build when `ECR_RETAG_CLI` names it, else the test build.
    pub fn cli() -> PathBuf {
        std::env::var_os("ECR_RETAG_CLI").map(PathBuf::from).unwrap_or_else(|| env!("CARGO_BIN_EXE_ecr-retag").into())
    }

    pub async fn start(env: &[(&str, &str)]) -> Function {
        let api = runtime_api::RuntimeApi::start().await;
        let mut command = tokio::process::Command::new(Self::binary());
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(clock_env())
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "ecr-retag")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_ENDPOINT_URL", &Emulator::shared().endpoint)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("start the bootstrap");
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            readers.push(tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    output.lock().unwrap().push(line);
                }
            }));
        }
        Function { api, child, output, readers }
    }

    /// Waits for the process to exit (as it does when INIT fails) and for all
    /// it printed to be read, and returns its exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(std::time::Duration::from_secs(30), self.child.wait()).await.ok()?.ok()?;
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        status.code()
    }

    /// The process's peak resident set size so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// The printed lines once at least `count` of them satisfy `wanted` (output is read
    /// concurrently, so it may trail the answer a little), or after 10 s.
    pub async fn lines_when(&self, count: usize, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines = self.lines();
            if lines.iter().filter(|l| wanted(l)).count() >= count || tokio::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The variables that shift a process's clock (libfaketime's), so that a child
/// started with a cleared environment reads the same clock as the test: CI runs
/// the tests with the clock moved ahead, and the deadline a test sends must mean
/// the same to the bootstrap.
pub fn clock_env() -> Vec<(String, std::ffi::OsString)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
        .filter(|(k, _)| k == "LD_PRELOAD" || k.starts_with("FAKETIME"))
        .collect()
}

/// The command line against `emulator`, with `dir` as its home: its exit code, stdout and stderr.
pub fn cli_on(emulator: &Emulator, dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(Function::cli())
        .args(args)
        .env_clear()
        .envs(clock_env())
        .envs([("AWS_ENDPOINT_URL", emulator.endpoint.as_str()), ("AWS_REGION", REGION)])
        .envs([("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")])
        .env("HOME", dir)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}
