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
    let (_, fan) = env.issuer.user();
    let hold = c.create_hold(authed(hold_request(&f, &[(&weekend.id, 1)]), &fan)).await.expect("hold").into_inner();
    let order = c.checkout_hold(authed(checkout(&hold), &fan)).await.expect("order").into_inner();
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
