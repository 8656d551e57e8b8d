//! Ticket documents: each format read back by a real decoder (a QR reader, a PDF
//! parser), never by searching strings.

use festival_platform::auth::Role;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;

use crate::helpers::*;

fn document(ticket: &pb::Ticket, format: pb::TicketDocumentFormat) -> pb::GetTicketDocumentRequest {
    pb::GetTicketDocumentRequest { ticket_id: ticket.id.clone(), format: format as i32 }
}

/// The text a QR code in a greyscale image holds.
fn read_qr(width: usize, height: usize, pixel: impl Fn(usize, usize) -> u8) -> String {
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, pixel);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().expect("decodes").1
}

/// Rasterises our SVG (one path of `Mx yh1v1h-1z` squares in a square viewBox), 4 pixels
/// per unit.
fn rasterise_svg(svg: &str) -> (usize, Vec<u8>) {
    let view = svg.split("viewBox=\"0 0 ").nth(1).expect("viewBox");
    let units: usize = view.split(' ').next().expect("size").parse().expect("number");
    let side = units * 4;
    let mut pixels = vec![255u8; side * side];
    let path = svg.split(" d=\"").nth(1).expect("path").split('"').next().expect("path data");
    let mut squares = 0;
    for square in path.split('M').filter(|s| !s.is_empty()) {
        let corner = square.strip_suffix("h1v1h-1z").expect("a unit square");
        let (x, y) = corner.split_once(' ').expect("x y");
        let (x, y): (usize, usize) = (x.parse().expect("x"), y.parse().expect("y"));
        for dy in 0..4 {
            let row = (y * 4 + dy) * side;
            pixels[row + x * 4..row + x * 4 + 4].fill(0);
        }
        squares += 1;
    }
    assert!(squares > 100, "a QR code has many dark modules: {squares}");
    (side, pixels)
}

#[tokio::test]
async fn a_ticket_prints_as_a_pdf_and_shows_as_a_qr_code_holding_its_credential() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let weekend = env.category(&f, "Weekend pass", 0, 10).await;
    let (fan, order) = env.free_ticket(&f, &weekend.id).await;
    let ticket = &order.tickets[0];

    // PDF (the default): one page, with the category and the ticket's id in its text.
    let response = c
        .get_ticket_document(authed(document(ticket, pb::TicketDocumentFormat::Unspecified), &fan))
        .await
        .expect("pdf");
    let disposition = response.metadata().get("content-disposition").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(disposition, Some(format!("inline; filename=\"ticket-{}.pdf\"", ticket.id)));
    let pdf = response.into_inner();
    assert_eq!(pdf.content_type, "application/pdf");
    let parsed = lopdf::Document::load_mem(&pdf.data).expect("a PDF the parser reads");
    assert_eq!(parsed.get_pages().len(), 1);
    let text = parsed.extract_text(&[1]).expect("text");
    assert!(text.contains("Weekend pass") && text.contains(&ticket.id), "{text}");
    assert!(text.contains("Valid every day"), "{text}");

    // PNG: a QR reader gets the credential back.
    let png = c
        .get_ticket_document(authed(document(ticket, pb::TicketDocumentFormat::Png), &fan))
        .await
        .expect("png")
        .into_inner();
    assert_eq!(png.content_type, "image/png");
    let decoder = png::Decoder::new(std::io::Cursor::new(png.data));
    let mut reader = decoder.read_info().expect("png header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("png frame");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    assert_eq!(read_qr(w, h, |x, y| pixels[y * w + x]), ticket.credential);

    // SVG: rasterised, the same.
    let svg = c
        .get_ticket_document(authed(document(ticket, pb::TicketDocumentFormat::Svg), &fan))
        .await
        .expect("svg")
        .into_inner();
    assert_eq!(svg.content_type, "image/svg+xml");
    let (side, raster) = rasterise_svg(std::str::from_utf8(&svg.data).expect("utf-8"));
    assert_eq!(read_qr(side, side, |x, y| raster[y * side + x]), ticket.credential);

    // Someone else's ticket is not found; the box office prints anonymous ones; a
    // cancelled ticket prints no more.
    let (_, stranger) = env.issuer.user();
    assert_eq!(
        code(c.get_ticket_document(authed(document(ticket, pb::TicketDocumentFormat::Pdf), &stranger)).await),
        "ERR_4000"
    );
    let cashier = env.member(&f, Role::Cashier);
    let sold = c.create_order(authed(box_office(&f, &weekend.id, 1), &cashier)).await.expect("box office").into_inner();
    c.get_ticket_document(authed(document(&sold.tickets[0], pb::TicketDocumentFormat::Pdf), &cashier))
        .await
        .expect("the box office prints");
    env.cancel(&f, &sold.id).await;
    assert_eq!(
        code(c.get_ticket_document(authed(document(&sold.tickets[0], pb::TicketDocumentFormat::Png), &cashier)).await),
        "ERR_6009"
    );
    assert_eq!(
        code(
            c.get_ticket_document(authed(
                pb::GetTicketDocumentRequest { ticket_id: ticket.id.clone(), format: 9 },
                &fan
            ))
            .await
        ),
        "ERR_1003"
    );
}

#[tokio::test]
async fn a_google_wallet_link_carries_the_ticket_signed_with_the_issuer_s_key() {
    let env = spawn_with(|c| {
        c.wallet.google_issuer_id = "3388000000022".into();
        c.wallet.google_service_account = "tickets@festival-test.iam.gserviceaccount.com".into();
        c.wallet.google_private_key =
            festival_platform::config::Secret::new(include_str!("../fixtures/google-wallet-test-key.pem"));
    })
    .await;
    let f = env.festival(program::FestivalStatus::Published).await;
    let pass = env.category(&f, "Weekend", 0, 10).await;
    let (fan, order) = env.free_ticket(&f, &pass.id).await;
    let ticket = &order.tickets[0];
    let link = |token: &str| {
        let (mut c, token) = (env.client(), token.to_owned());
        let request = pb::GetGoogleWalletLinkRequest { ticket_id: ticket.id.clone() };
        async move { c.get_google_wallet_link(authed(request, &token)).await }
    };

    let url = link(&fan).await.expect("link").into_inner().url;
    let jwt = url.strip_prefix(festival_ticketing::wallet::GOOGLE_SAVE_URL).expect("a save link");
    let public = jsonwebtoken::DecodingKey::from_rsa_pem(include_bytes!("../fixtures/google-wallet-test-key.pub.pem"))
        .expect("public key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["google"]);
    validation.set_required_spec_claims(&["aud", "iss"]);
    validation.validate_exp = false;
    let claims =
        jsonwebtoken::decode::<serde_json::Value>(jwt, &public, &validation).expect("signed by the issuer").claims;
    assert_eq!(claims["iss"], "tickets@festival-test.iam.gserviceaccount.com");
    let object = &claims["payload"]["eventTicketObjects"][0];
    assert_eq!(object["id"], format!("3388000000022.{}", ticket.id));
    assert_eq!(object["barcode"]["value"], ticket.credential.as_str(), "the gate scans the phone like the paper");
    assert_eq!(claims["payload"]["eventTicketClasses"][0]["id"], format!("3388000000022.{}", f.id));
    // One byte of the signature changed: refused.
    let mut tampered = jwt.to_owned();
    let last = if tampered.ends_with('A') { 'B' } else { 'A' };
    tampered.pop();
    tampered.push(last);
    assert!(jsonwebtoken::decode::<serde_json::Value>(&tampered, &public, &validation).is_err());

    // Someone else's ticket is not found; a revoked one has no pass.
    let (_, stranger) = env.issuer.user();
    assert_eq!(outcome(link(&stranger).await), "ERR_4000");
    assert_eq!(outcome(link(&env.member(&f, Role::Cashier)).await), "OK", "the box office prints and sends passes");
    env.cancel(&f, &order.id).await;
    assert_eq!(outcome(link(&fan).await), "ERR_6009");
}

#[tokio::test]
async fn without_a_wallet_issuer_there_is_no_wallet_link() {
    let env = spawn().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let pass = env.category(&f, "Weekend", 0, 10).await;
    let (fan, order) = env.free_ticket(&f, &pass.id).await;
    let request = pb::GetGoogleWalletLinkRequest { ticket_id: order.tickets[0].id.clone() };
    assert_eq!(outcome(c.get_google_wallet_link(authed(request, &fan)).await), "ERR_6020");
}

/// Runs a command, answering whether it succeeded (its output shown if not).
fn run(dir: &std::path::Path, program: &str, args: &[&str]) -> bool {
    let out = std::process::Command::new(program).args(args).current_dir(dir).output().expect("runs");
    if !out.status.success() {
        eprintln!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

#[tokio::test]
async fn an_apple_wallet_pass_is_signed_so_that_openssl_verifies_it_against_the_certificate_chain() {
    // A test CA stands for Apple's WWDR intermediate; it certifies a pass type certificate.
    let dir = std::env::temp_dir().join(festival_testkit::unique_name());
    std::fs::create_dir_all(&dir).expect("temp dir");
    let openssl = |args: &[&str]| assert!(run(&dir, "openssl", args), "openssl {args:?}");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Test WWDR",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "pass.key",
        "-out",
        "pass.csr",
        "-subj",
        "/CN=Pass Type ID: pass.org.festival.test",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "pass.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "pass.pem",
        "-days",
        "2",
    ]);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("pem");
    let (ca, pass_cert, pass_key, ca_key) = (read("ca.pem"), read("pass.pem"), read("pass.key"), read("ca.key"));

    // The key must be the certificate's.
    let mut config = festival_ticketing::config::WalletConfig {
        apple_pass_type_id: "pass.org.festival.test".into(),
        apple_team_id: "TEAM123456".into(),
        apple_certificate: pass_cert.clone(),
        apple_private_key: festival_platform::config::Secret::new(ca_key),
        apple_wwdr_certificate: ca.clone(),
        ..Default::default()
    };
    let refused = festival_ticketing::wallet::AppleWallet::from_config(&config).err().expect("refused");
    assert!(refused.contains("not the key"), "{refused}");
    config.apple_private_key = festival_platform::config::Secret::new(pass_key);
    let env = spawn_with(move |c| c.wallet = config).await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let weekend = env.category(&f, "Weekend", 0, 10).await;
    let (fan, order) = env.free_ticket(&f, &weekend.id).await;
    let ticket = &order.tickets[0];
    let request = pb::GetAppleWalletPassRequest { ticket_id: ticket.id.clone() };
    let body = c.get_apple_wallet_pass(authed(request.clone(), &fan)).await.expect("pass").into_inner();
    assert_eq!(body.content_type, "application/vnd.apple.pkpass");

    // A real zip reader finds the pass's files; the manifest lists each one's SHA-1.
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(body.data)).expect("a zip");
    let mut files = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("entry");
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
        files.insert(entry.name().to_owned(), data);
    }
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names, vec!["icon.png", "icon@2x.png", "manifest.json", "pass.json", "signature"]);
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).expect("manifest");
    for name in ["icon.png", "icon@2x.png", "pass.json"] {
        let digest: String =
            <sha1::Sha1 as sha1::Digest>::digest(&files[name]).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(manifest[name], digest, "{name}");
    }
    let pass: serde_json::Value = serde_json::from_slice(&files["pass.json"]).expect("pass.json");
    assert_eq!(
        (pass["passTypeIdentifier"].as_str(), pass["serialNumber"].as_str(), pass["barcodes"][0]["message"].as_str()),
        (Some("pass.org.festival.test"), Some(ticket.id.as_str()), Some(ticket.credential.as_str()))
    );

    // OpenSSL verifies the detached signature over the manifest against the chain, and
    // refuses it over a manifest changed by one byte.
    std::fs::write(dir.join("manifest.json"), &files["manifest.json"]).expect("write");
    std::fs::write(dir.join("signature"), &files["signature"]).expect("write");
    let verify = |content: &str| {
        run(
            &dir,
            "openssl",
            &[
                "smime",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "signature",
                "-content",
                content,
                "-CAfile",
                "ca.pem",
                "-purpose",
                "any",
                "-out",
                "/dev/null",
            ],
        )
    };
    assert!(verify("manifest.json"), "the signature verifies");
    let printed = std::process::Command::new("openssl")
        .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in", "signature"])
        .current_dir(&dir)
        .output()
        .expect("openssl cms");
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("signingTime"), "Wallet needs a signing time: {printed:.400}");
    let mut changed = files["manifest.json"].clone();
    changed.push(b' ');
    std::fs::write(dir.join("changed.json"), changed).expect("write");
    assert!(!verify("changed.json"), "a changed manifest is refused");

    // Only its holder (or the box office) gets it; a revoked ticket has none.
    let (_, stranger) = env.issuer.user();
    assert_eq!(outcome(c.get_apple_wallet_pass(authed(request.clone(), &stranger)).await), "ERR_4000");
    env.cancel(&f, &order.id).await;
    assert_eq!(outcome(c.get_apple_wallet_pass(authed(request, &fan)).await), "ERR_6009");
    std::fs::remove_dir_all(&dir).ok();
}
