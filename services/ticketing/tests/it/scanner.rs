//! The scanner client (`festival_gate::scanner`) against real ticketing behind a TCP
//! proxy the test cuts: it falls back to offline by itself and says so, keeps scanning
//! after an invalid code, loses nothing across a restart, uploads once the network is
//! back, and a revoked device stops instead of scanning offline.

use std::time::Duration;

use festival_gate::rule::{Direction, Move};
use festival_gate::scanner::{Mode, Scan, Scanner, ScannerConfig, ScannerError, Verdict};
use festival_platform::auth::DeviceLevel;
use festival_proto::program::v1 as program;
use festival_testkit::TcpProxy;
use tonic::transport::Endpoint;
use uuid::Uuid;

use crate::helpers::*;

fn admitted(scan: &Scan, mode: Mode) -> Uuid {
    match scan {
        Scan { mode: m, verdict: Verdict::Admitted { ticket_id, movement: Move::Enter } } if *m == mode => *ticket_id,
        other => panic!("expected an admission {mode:?}, got {other:?}"),
    }
}

fn refused(scan: &Scan, mode: Mode) -> &str {
    assert_eq!(scan.mode, mode, "{scan:?}");
    assert!(matches!(scan.verdict, Verdict::Refused { .. }), "{scan:?}");
    scan.verdict.code()
}

#[tokio::test]
async fn a_scanner_falls_back_to_offline_by_itself_keeps_scanning_and_uploads_once_back() {
    let env = spawn().await;
    let f = env.festival(program::FestivalStatus::Published).await;
    let ga = env.category(&f, "GA", 0, 10).await;
    let mut orders = Vec::new();
    for _ in 0..4 {
        orders.push(env.free_ticket(&f, &ga.id).await.1);
    }
    let [a, b, c, d] = [0, 1, 2, 3].map(|i| orders[i].tickets[0].credential.clone());
    let device = env.scanner(&f, "north-1", DeviceLevel::Steward);
    let proxy = TcpProxy::start(&env.app.addr.to_string()).await;
    let state = std::env::temp_dir().join(format!("scanner-{}", Uuid::now_v7()));
    let config = ScannerConfig {
        festival_id: f.id,
        list_id: String::new(),
        device_id: device.id,
        gate: "north-1".into(),
        online_timeout: Duration::from_secs(3),
        sync_timeout: Duration::from_secs(10),
        max_snapshot_age: Duration::from_secs(24 * 3600),
        state_dir: Some(state.clone()),
    };
    let connect = || {
        Endpoint::from_shared(format!("http://{}", proxy.addr))
            .expect("url")
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy()
    };
    let new_scanner = || {
        Scanner::new(connect(), config.clone(), device.key.clone(), device.token.clone(), env.app.clock.clone())
            .expect("scanner")
    };
    let mut scanner = new_scanner();
    assert!(matches!(scanner.scan(&a, Direction::Entry).await, Ok(s) if s.mode == Mode::Online), "online first");
    assert_eq!(scanner.sync().await.expect("the snapshot").uploaded, 0);

    // Online: the first scan admits, the second is refused by ticketing.
    assert_eq!(refused(&scanner.scan(&a, Direction::Entry).await.expect("scan"), Mode::Online), "ERR_6001");

    // The network drops: the next scan is answered offline, and says so.
    proxy.cut();
    let b_id = admitted(&scanner.scan(&b, Direction::Entry).await.expect("scan"), Mode::Offline);
    assert_eq!(b_id.to_string(), orders[1].tickets[0].id);
    assert_eq!(scanner.mode(), Mode::Offline);
    // An invalid code is one refusal; the scanner goes on.
    assert_eq!(
        refused(&scanner.scan("not a ticket", Direction::Entry).await.expect("scan"), Mode::Offline),
        "ERR_6004"
    );
    admitted(&scanner.scan(&c, Direction::Entry).await.expect("scan"), Mode::Offline);
    // What it let through is remembered, online or offline.
    assert_eq!(refused(&scanner.scan(&b, Direction::Entry).await.expect("scan"), Mode::Offline), "ERR_6001");
    assert_eq!(refused(&scanner.scan(&a, Direction::Entry).await.expect("scan"), Mode::Offline), "ERR_6001");
    // D's order is cancelled meanwhile; the offline scanner cannot know and lets it in.
    env.cancel(&f, &orders[3].id).await;
    admitted(&scanner.scan(&d, Direction::Entry).await.expect("scan"), Mode::Offline);
    assert_eq!(scanner.pending(), 3);

    // A sync while the network is down keeps everything and stays offline.
    assert!(matches!(scanner.sync().await, Err(ScannerError::Unreachable(_))));
    assert_eq!((scanner.pending(), scanner.mode()), (3, Mode::Offline));
    // The scanner app restarts before the network is back: it keeps its snapshot and
    // its scans, and still refuses a second entry it let through before.
    drop(scanner);
    let mut scanner = new_scanner();
    assert_eq!(scanner.pending(), 3);
    assert_eq!(refused(&scanner.scan(&c, Direction::Entry).await.expect("scan"), Mode::Offline), "ERR_6001");

    // Back: the scans are uploaded once, the revoked one flagged, and it scans online.
    proxy.restore().await;
    let report = scanner.sync().await.expect("sync");
    assert_eq!((report.uploaded, report.admitted, report.duplicates, report.flagged), (3, 2, 0, 1));
    assert_eq!((scanner.pending(), scanner.mode()), (0, Mode::Online));
    assert_eq!(std::fs::read_to_string(state.join("journal")).expect("journal"), "", "uploaded scans leave it");
    assert!(!state.join("in-flight").exists());
    assert_eq!(refused(&scanner.scan(&c, Direction::Entry).await.expect("scan"), Mode::Online), "ERR_6001");
    assert_eq!(refused(&scanner.scan(&d, Direction::Entry).await.expect("scan"), Mode::Online), "ERR_6009");

    // Identity revokes the device: it stops, and never falls back to offline.
    festival_testkit::publish_event(
        &env.app.naming(),
        &festival_proto::identity::v1::DeviceRevoked {
            device_id: device.id.to_string(),
            festival_id: f.id.to_string(),
            revoked_by: Uuid::now_v7().to_string(),
        },
    )
    .await;
    let (_, fresh) = env.free_ticket(&f, &ga.id).await;
    let credential = fresh.tickets[0].credential.clone();
    let stopped = festival_testkit::eventually(Duration::from_secs(15), || {
        let mut scanner = new_scanner();
        let credential = credential.clone();
        async move {
            matches!(scanner.scan(&credential, Direction::Entry).await,
                Err(ScannerError::DeviceRefused { ref code, .. }) if code == "ERR_2010")
        }
    })
    .await;
    assert!(stopped, "a revoked device kept scanning");
    assert!(matches!(scanner.scan(&credential, Direction::Entry).await, Err(ScannerError::DeviceRefused { .. })));
    assert_eq!(scanner.mode(), Mode::Online, "a refused device does not fall back");
    // Stopped for good: forced offline, restarted, it still refuses to scan.
    scanner.go_offline();
    assert!(matches!(scanner.scan(&credential, Direction::Entry).await, Err(ScannerError::DeviceRefused { .. })));
    let mut restarted = new_scanner();
    restarted.go_offline();
    assert!(matches!(restarted.scan(&credential, Direction::Entry).await, Err(ScannerError::DeviceRefused { .. })));
    let _ = std::fs::remove_dir_all(state);
}
