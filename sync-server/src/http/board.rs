//! The dispatcher's live board: the page at `/board` (one self-contained HTML file, no build
//! step: it signs in through the API and reads the job list, the technicians and this event
//! stream with its bearer token) and `GET /api/v1/board/events`, a server-sent event stream
//! that says `changed` whenever the relational rows move on (a device's sync, a dispatcher's
//! edit, on whichever node it was projected), so the page reloads its list without a reload
//! of the page.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::Stream;

use super::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const PAGE: &str = include_str!("board.html");

/// `GET /board`: the page. It holds no data; everything comes from the API after sign-in.
pub async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-cache"),
            // The page runs only its own inline script and talks only to this server.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

/// `GET /api/v1/board/events`: `event: changed` with the rows' log position as data, once at
/// the start and then each time the rows move on. Comments keep idle connections open through
/// proxies. Dispatchers, admins and the back office.
#[utoipa::path(get, path = "/api/v1/board/events", tag = "dispatch", responses((status = 200, description = "text/event-stream: `changed` events with the rows' log position", content_type = "text/event-stream", body = String), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn events(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.actor().org_reader()?;
    let mut rx = app.rows_position.subscribe();
    rx.mark_changed();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let position = *rx.borrow_and_update();
        let event = Event::default().event("changed").data(position.to_string());
        Some((Ok(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
