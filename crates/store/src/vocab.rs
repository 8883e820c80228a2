//! The words the store keeps in TEXT columns, as types: an order's status, a history event's
//! kind, a job's status. A stored word this version does not know is an error naming where
//! it was found, never a default.

use std::fmt;
use std::str::FromStr;

/// Defines a fieldless enum kept as one of a fixed set of words.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            /// The stored word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($name::$variant),)+
                    other => Err(UnknownWord(other.to_string())),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, word: &&str) -> bool {
                self.as_str() == *word
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

/// A stored word that is none of its column's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord(pub String);

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a word this version of certhub knows", self.0)
    }
}

words! {
    /// Where an order stands: `new` until the CA answers newOrder, then the CA's status
    /// (RFC 8555 §7.1.6), or `abandoned` when certhub gave it up.
    OrderStatus {
        New = "new",
        Pending = "pending",
        Ready = "ready",
        Processing = "processing",
        Valid = "valid",
        Invalid = "invalid",
        /// Given up by certhub (interrupted before the CA answered, moved to another
        /// account, refused for good).
        Abandoned = "abandoned",
    }
}

impl OrderStatus {
    /// Whether the order has ended (it can no longer be continued).
    pub fn has_ended(self) -> bool {
        matches!(self, OrderStatus::Valid | OrderStatus::Invalid | OrderStatus::Abandoned)
    }
}

words! {
    /// Where a managed certificate stands, as stored; `expired` is only ever shown (see
    /// [`crate::CertRecord::effective_state`]).
    CertState {
        /// Never issued.
        Pending = "pending",
        /// Issued (or imported), and the last request succeeded.
        Valid = "valid",
        /// Issued, and a new request is under way.
        Renewing = "renewing",
        /// The last request failed.
        Failing = "failing",
        /// Its latest certificate was revoked.
        Revoked = "revoked",
        /// Its latest certificate has expired (shown, not stored).
        Expired = "expired",
    }
}

words! {
    /// What a history event reports.
    EventKind {
        /// An order was placed (the detail is its URL).
        Ordered = "ordered",
        /// An interrupted order was taken up again.
        Resumed = "resumed",
        /// An identifier was validated.
        Validated = "validated",
        /// A certificate was issued.
        Issued = "issued",
        /// A request failed.
        Failed = "failed",
        /// The fallback account ordered.
        Fallback = "fallback",
        /// The latest certificate was revoked.
        Revoked = "revoked",
        /// A deployment task delivered the certificate.
        Deployed = "deployed",
        /// A deployment task failed.
        DeployFailed = "deploy-failed",
        /// The latest certificate is about to expire with nothing renewing it.
        Expiring = "expiring",
        /// A certificate obtained elsewhere was imported.
        Imported = "imported",
    }
}

words! {
    /// Where a job of the hub stands.
    JobStatus {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// The hub running it stopped before it ended.
        Interrupted = "interrupted",
    }
}

words! {
    /// Where a challenge an agent answers on its machine stands.
    ChallengeState {
        /// The orderer wants it presented.
        Wanted = "wanted",
        /// The agent presented it.
        Presented = "presented",
        /// The agent could not present it (the row's error says why).
        Failed = "failed",
        /// Validation is over: the agent removes it.
        Cleanup = "cleanup",
    }
}

/// Reads a stored word of `column` in `table` row `row`.
pub(crate) fn parse<T: FromStr<Err = UnknownWord>>(
    table: &'static str,
    row: &str,
    column: &'static str,
    word: &str,
) -> Result<T, crate::Error> {
    word.parse().map_err(|e: UnknownWord| {
        crate::Error::Unreadable(format!("the stored {column} of {table} row {row:?}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_itself() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>(), Ok(*s));
        }
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(*k));
        }
        for s in CertState::ALL {
            assert_eq!(s.as_str().parse::<CertState>(), Ok(*s));
        }
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(*s));
        }
        for s in ChallengeState::ALL {
            assert_eq!(s.as_str().parse::<ChallengeState>(), Ok(*s));
        }
        assert!("carrier-pigeon".parse::<EventKind>().is_err());
    }
}
