//! An error and its causes as one sentence.

use std::error::Error;

/// `e` and the causes under it, joined by ": ", each said once: a cause
/// whose text is already in what came before is left out, since many
/// errors print their own source.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = cause(e);
    while let Some(c) = next {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause(c);
    }
    text
}

/// What caused `e`. An `io::Error` that wraps another error answers that
/// error, where its own `source` would skip it.
pub fn cause<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    match e.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
        None => e.source(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connecting failed: {0}")]
    struct Says(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("connecting failed")]
    struct Hides(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("handshake refused")]
    struct Inner;

    #[test]
    fn each_cause_is_said_once() {
        let refused = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            chain(&Says(refused())),
            "connecting failed: connection refused"
        );
        assert_eq!(
            chain(&Hides(refused())),
            "connecting failed: connection refused"
        );
    }

    #[test]
    fn an_error_inside_an_io_error_is_reached() {
        let wrapped = Hides(std::io::Error::other(Inner));
        assert_eq!(chain(&wrapped), "connecting failed: handshake refused");
        assert!(cause(cause(&wrapped).unwrap()).unwrap().is::<Inner>());
    }
}
