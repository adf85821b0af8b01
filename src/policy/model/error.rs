//! `PolicyError`: what every stage of the policy engine reports, with the
//! 1-based line and column in the policy text when one applies.

/// A policy error, with the 1-based position in the source when one applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    pub message: String,
    pub position: Option<(usize, usize)>,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((l, c)) => write!(f, "line {l}, column {c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl PolicyError {
    pub fn new(msg: impl Into<String>) -> Self {
        PolicyError {
            message: msg.into(),
            position: None,
        }
    }
    pub fn at(line: usize, col: usize, msg: impl Into<String>) -> Self {
        PolicyError {
            message: msg.into(),
            position: Some((line, col)),
        }
    }
    /// Prefixes the message (`src=`, `dst="tag:x": `) like Tailscale does.
    pub fn prefixed(mut self, p: &str) -> Self {
        self.message = format!("{p}{}", self.message);
        self
    }
}
