//! Names that users give to certificates, accounts and notification channels. They appear in
//! URLs (`/certificates/NAME`), file names (`DATA_DIR/locks/NAME.lock`) and commands, so they
//! keep to a safe alphabet and never look like a path segment such as `.` or `..`.

/// The rule, as error messages state it.
pub const RULE: &str = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit";

/// Whether `name` follows [`RULE`].
pub fn is_valid(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_to_the_alphabet_and_are_never_path_segments() {
        for good in ["web", "a", "www.example.com", "web_01-b", "9", &"x".repeat(64)] {
            assert!(is_valid(good), "{good}");
        }
        for bad in ["", ".", "..", "...", ".hidden", "-x", "_x", "a b", "a/b", "é", &"x".repeat(65)]
        {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
