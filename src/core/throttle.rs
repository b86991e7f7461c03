//! Admin-token guessing: a fixed-window count of failed attempts per client. The admin API
//! consults it before it says anything about a token, so a client that is over the limit learns
//! nothing more, not even from the right token (it gets 429 either way).

/// Failed attempts a client may make per window.
pub const MAX_FAILURES: u32 = 10;
/// Client registrations (`POST /oauth/register`) a client address may make per window: a
/// client registers once per server, so this bounds abuse, not use.
pub const MAX_REGISTRATIONS: u32 = 30;
/// The window: five minutes.
pub const WINDOW_MS: u64 = 5 * 60 * 1000;

/// One client's failures in the current window, as its guard object stores them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    pub window_start: u64,
    pub failures: u32,
}

/// What the admin API does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Verdict {
    /// Under the limit: answer as the token deserves (a failure was counted if it was wrong).
    Checked,
    /// Over the limit: 429, whatever the token, for this many more seconds.
    Blocked { retry_after: u64 },
}

impl Attempts {
    /// The stored form, `window_start,failures` (plain text: cheaper in the bundle than a
    /// serialised struct); anything else reads as no failures.
    pub fn parse(stored: &str) -> Attempts {
        let mut parts = stored.split(',').map(str::parse::<u64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(window_start)), Some(Ok(failures))) => {
                Attempts { window_start, failures: failures.min(u64::from(u32::MAX)) as u32 }
            }
            _ => Attempts::default(),
        }
    }

    pub fn stored(&self) -> String {
        format!("{},{}", self.window_start, self.failures)
    }

    /// Records one attempt (`ok`: the token was right) at `now` and says how to answer it.
    pub fn attempt(&mut self, now: u64, ok: bool) -> Verdict {
        self.counted(now, ok, MAX_FAILURES)
    }

    /// Records one client registration at `now`: every one counts, `MAX_REGISTRATIONS` a window.
    pub fn registration(&mut self, now: u64) -> Verdict {
        self.counted(now, false, MAX_REGISTRATIONS)
    }

    fn counted(&mut self, now: u64, ok: bool, max: u32) -> Verdict {
        if now.saturating_sub(self.window_start) >= WINDOW_MS {
            *self = Attempts { window_start: now, failures: 0 };
        }
        if self.failures >= max {
            let left_ms = (self.window_start + WINDOW_MS).saturating_sub(now);
            return Verdict::Blocked { retry_after: left_ms.div_ceil(1000).max(1) };
        }
        if !ok {
            self.failures += 1;
        }
        Verdict::Checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_whatever_the_token_until_the_window_ends() {
        let mut a = Attempts::default();
        let t0 = 1_000_000;
        assert_eq!(a.attempt(t0, true), Verdict::Checked);
        for i in 0..MAX_FAILURES {
            assert_eq!(a.attempt(t0 + u64::from(i), false), Verdict::Checked, "failure {i}");
        }
        assert_eq!(a.failures, MAX_FAILURES);
        assert_eq!(a.attempt(t0 + 500, false), Verdict::Blocked { retry_after: 300 });
        assert_eq!(a.attempt(t0 + 1000, true), Verdict::Blocked { retry_after: 299 }, "the right token too");
        assert_eq!(a.attempt(t0 + WINDOW_MS - 1, true), Verdict::Blocked { retry_after: 1 });
        assert_eq!(a.failures, MAX_FAILURES, "blocked attempts are not counted twice");
        let mut r = Attempts::default();
        for i in 0..MAX_REGISTRATIONS {
            assert_eq!(r.registration(t0 + u64::from(i)), Verdict::Checked, "registration {i}");
        }
        assert!(matches!(r.registration(t0 + 100), Verdict::Blocked { .. }));
        assert_eq!(r.registration(t0 + WINDOW_MS), Verdict::Checked, "a new window");
        assert_eq!(a.attempt(t0 + WINDOW_MS, true), Verdict::Checked);
        assert_eq!(a, Attempts { window_start: t0 + WINDOW_MS, failures: 0 });
    }

    #[test]
    fn stored_form_round_trips() {
        let a = Attempts { window_start: 12345, failures: 7 };
        assert_eq!(Attempts::parse(&a.stored()), a);
        // Counts above the admin limit are kept: the registration limit is higher.
        assert_eq!(Attempts::parse("1,99").failures, 99);
        let mut r = Attempts::default();
        for i in 0..MAX_REGISTRATIONS {
            let mut read_back = Attempts::parse(&r.stored());
            assert_eq!(read_back.registration(u64::from(i)), Verdict::Checked);
            r = read_back;
        }
        assert!(
            matches!(Attempts::parse(&r.stored()).registration(100), Verdict::Blocked { .. }),
            "through storage"
        );
        for bad in ["", "x", "1", "1,-2", "a,b"] {
            assert_eq!(Attempts::parse(bad), Attempts::default(), "{bad}");
        }
    }

    #[test]
    fn right_tokens_never_count() {
        let mut a = Attempts::default();
        for t in 0..100 {
            assert_eq!(a.attempt(t, true), Verdict::Checked);
        }
        assert_eq!(a.failures, 0);
    }
}
