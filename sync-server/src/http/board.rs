//! The dispatcher's live board: the page at `/board` (one self-contained HTML file, no build
//! step: it signs in through the API and reads the job list, the technicians and this event
//! stream with its bearer token) and `GET /api/v1/board/events`, a server-sent event stream
//! that says `changed` whenever the relational rows move on (a device's sync, a dispatcher's
//! edit, on whichever node it was projected), so the page reloads its list without a reload
//! of the page.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures_util::Stream;
use uuid::Uuid;

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
    let me = caller.actor();
    me.org_reader()?;
    let open = app
        .board_streams
        .open(me.user_id, app.config.max_board_streams)
        .ok_or_else(|| {
            ApiError::Rejected(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                format!(
                    "{} board event streams are open for this user already: close one (a tab) first",
                    app.config.max_board_streams
                ),
            )
        })?;
    let mut rx = app.rows_position.subscribe();
    rx.mark_changed();
    // The stream owns `open`: its slot is given back when the client goes away.
    let stream = futures_util::stream::unfold((rx, open), |(mut rx, open)| async move {
        rx.changed().await.ok()?;
        let position = *rx.borrow_and_update();
        let event = Event::default().event("changed").data(position.to_string());
        Some((Ok(event), (rx, open)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The board event streams open per user: each is cheap, but a client that opens them in a loop
/// must not hold the server's memory and file descriptors.
#[derive(Default)]
pub struct Streams(Arc<Mutex<HashMap<Uuid, usize>>>);

/// One open stream; closing it (dropping) frees its slot.
pub struct OpenStream {
    user: Uuid,
    counts: Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl Streams {
    /// A slot for one more stream of `user`, unless `max` are open.
    pub fn open(&self, user: Uuid, max: usize) -> Option<OpenStream> {
        let mut counts = self.0.lock().expect("stream counts");
        let n = counts.entry(user).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(OpenStream {
            user,
            counts: self.0.clone(),
        })
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("stream counts");
        if let Some(n) = counts.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_user_and_given_back() {
        let streams = Streams::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let first = streams.open(a, 2).unwrap();
        let _second = streams.open(a, 2).unwrap();
        assert!(streams.open(a, 2).is_none());
        assert!(streams.open(b, 2).is_some());
        drop(first);
        assert!(streams.open(a, 2).is_some());
    }
}
