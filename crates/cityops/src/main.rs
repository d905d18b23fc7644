//! The `cityops` binary: parse the command line, load settings, run until Ctrl-C or SIGTERM, stop cleanly.

use cityops::app::{App, Mode, StartOptions};
use cityops::cli::{AuditCommand, Cli, Command, UserCommand};
use cityops::settings::Settings;
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line that says what to change.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (common, mode) = match &cli.command {
        Command::Demo { common, no_sim, .. } => (common, Mode::Demo { simulator: !no_sim }),
        Command::Serve { common } => (common, Mode::Serve),
        Command::Grid { command } => return cityops::grid_cli::run(command),
        Command::Audit {
            command: AuditCommand::Verify { common },
        } => {
            let settings = Settings::load(common.config.as_deref(), &common.overrides())?;
            return run_audit_verify(&settings).await;
        }
        Command::User { common, command } => {
            let settings = Settings::load(common.config.as_deref(), &common.overrides())?;
            return run_user(&settings, command).await;
        }
        Command::BenchPlatform {
            data_dir,
            devices,
            client_id,
        } => {
            init_tracing("warn,rumqttd=off");
            return cityops::bench::platform::serve_child(data_dir.clone(), *devices, client_id)
                .await;
        }
        Command::Bench {
            scenario,
            quick,
            out,
            mosquitto,
        } => {
            init_tracing("warn,rumqttd=off");
            let mosquitto = match mosquitto.as_deref() {
                None => cityops::bench::MosquittoTarget::None,
                Some("spawn") => cityops::bench::MosquittoTarget::Spawn,
                Some(url) => {
                    let mut settings = Settings::defaults();
                    settings.mqtt_url = Some(url.to_string());
                    match settings.external_broker()? {
                        Some((host, port)) => cityops::bench::MosquittoTarget::At(host, port),
                        None => cityops::bench::MosquittoTarget::None,
                    }
                }
            };
            let options = cityops::bench::Options {
                quick: *quick,
                out_dir: out.clone(),
                mosquitto,
            };
            cityops::bench::run(scenario, &options).await?;
            return Ok(());
        }
    };
    let settings = Settings::load(common.config.as_deref(), &common.overrides())?;
    init_tracing(&settings.log);
    let demo_password = match &cli.command {
        Command::Demo { demo_password, .. } => demo_password.clone(),
        _ => None,
    };
    let app = App::start_with(settings, mode, StartOptions { demo_password }).await?;
    print_ready(&app, mode);
    wait_for_signal().await;
    tracing::info!("shutting down");
    app.shutdown().await
}

async fn run_user(settings: &Settings, command: &UserCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let store = cityops_store::Store::open(&settings.database_url()).await?;
    let stdin = std::io::stdin();
    let result = match command {
        UserCommand::Add {
            username,
            role,
            display_name,
            department,
        } => {
            let password = cityops::users::read_password_line(&mut stdin.lock())?;
            cityops::users::add(
                &store,
                username,
                display_name,
                role,
                department.as_deref(),
                password,
            )
            .await
        }
        UserCommand::Passwd { username } => {
            let password = cityops::users::read_password_line(&mut stdin.lock())?;
            cityops::users::passwd(&store, username, password).await
        }
        UserCommand::List => cityops::users::list(&store).await,
        UserCommand::Disable { username } => {
            cityops::users::set_disabled(&store, username, true).await
        }
        UserCommand::Enable { username } => {
            cityops::users::set_disabled(&store, username, false).await
        }
    };
    store.close().await;
    result
}

async fn run_audit_verify(settings: &Settings) -> anyhow::Result<()> {
    // Only an existing database is checked: opening would create an empty one at a mistyped path.
    let url = settings.database_url();
    if let Some(path) = url.strip_prefix("sqlite://")
        && !path.contains(":memory:")
    {
        let path = path.split('?').next().unwrap_or(path);
        anyhow::ensure!(
            std::path::Path::new(path).exists(),
            "no database at {path}; give --data-dir or --database-url"
        );
    }
    let store = cityops_store::Store::open(&url).await?;
    let result = cityops::audit_cli::verify(&store, &mut std::io::stdout().lock()).await;
    store.close().await;
    let summary = result?;
    // The failing cases are printed above; the error line gives exit code 1.
    anyhow::ensure!(
        summary.failed == 0,
        "{} case(s) failed audit verification",
        summary.failed
    );
    Ok(())
}

fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

fn print_ready(app: &App, mode: Mode) {
    let http = app.http_addr;
    let (host, port) = &app.mqtt_addr;
    let broker = if app.embedded_broker {
        "embedded broker"
    } else {
        "external broker"
    };
    println!(
        "cityops is ready ({})",
        if matches!(mode, Mode::Serve) {
            "serve"
        } else {
            "demo"
        }
    );
    println!("  live incidents   http://{http}/");
    println!("  websocket        ws://{http}/ws?since=0");
    println!("  REST API         http://{http}/api/v1/incidents   http://{http}/api/v1/devices");
    println!("  metrics          http://{http}/metrics");
    println!("  health           http://{http}/healthz");
    println!(
        "  MQTT             mqtt://{host}:{port} ({broker}); devices publish to city/v1/devices/{{id}}/up"
    );
    println!("  database         {}", app.database_url);
    match &app.demo_users {
        Some(cityops::users::DemoUsers::Created {
            password,
            generated,
        }) => {
            let how = if *generated {
                "generated, shown only now"
            } else {
                "from --demo-password"
            };
            println!(
                "  demo users       admin, operator, shiftlead, dispatcher, supervisor, inspector1-3, handler.<dept>"
            );
            println!("                   password: {password}   ({how})");
        }
        Some(cityops::users::DemoUsers::PasswordReset) => {
            println!(
                "  demo users       password set from --demo-password / CITYOPS_DEMO_PASSWORD"
            );
        }
        Some(cityops::users::DemoUsers::Existing) => {
            println!(
                "  demo users       exist already (password as printed when created; --demo-password resets it)"
            );
        }
        None => {}
    }
    if app.sim_devices > 0 {
        println!(
            "  simulator        {} devices in 东城区 (Dongcheng) publishing over MQTT",
            app.sim_devices
        );
    }
    println!("Press Ctrl-C to stop.");
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
