//! Files written atomically: each goes to a temporary file beside its target (with its mode
//! and owner already set, and synced), and only when every file of a set is ready are they
//! renamed over their targets. A failure at any point leaves the previous files as they were
//! (a rename that fails puts back the files renamed before it) and removes the temporary ones.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::Error;

/// Who should own written files: uid and gid, each optional (unchanged when `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ownership {
    /// The user id.
    pub uid: Option<u32>,
    /// The group id.
    pub gid: Option<u32>,
}

impl Ownership {
    /// Resolves a user and a group, each a name (from /etc/passwd and /etc/group) or a
    /// number.
    pub fn resolve(owner: Option<&str>, group: Option<&str>) -> Result<Self, Error> {
        Ok(Self {
            uid: owner.map(|o| lookup("/etc/passwd", "user", o)).transpose()?,
            gid: group.map(|g| lookup("/etc/group", "group", g)).transpose()?,
        })
    }
}

/// The id of `name` in a passwd-style database (`name:x:id:…`), or `name` as a number.
fn lookup(db: &str, what: &str, name: &str) -> Result<u32, Error> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    let text = std::fs::read_to_string(db)
        .map_err(|source| Error::Io { what: format!("cannot read {db}"), source })?;
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let n = f.next()?;
            let id = f.nth(1)?.parse::<u32>().ok()?;
            (n == name).then_some(id)
        })
        .next()
        .ok_or_else(|| Error::Owner(format!("there is no {what} named {name:?} in {db}")))
}

/// A file to write.
pub struct NewFile<'a> {
    /// Where.
    pub path: PathBuf,
    /// What.
    pub data: &'a [u8],
    /// Its mode.
    pub mode: u32,
}

/// Writes every file of `files` or none: see the module documentation.
pub fn write_all(files: &[NewFile<'_>], owner: Ownership) -> Result<(), Error> {
    let mut ready: Vec<(PathBuf, &Path)> = Vec::with_capacity(files.len());
    let result = files.iter().try_for_each(|f| {
        let tmp = prepare(f, owner)?;
        ready.push((tmp, &f.path));
        Ok(())
    });
    if let Err(e) = result {
        for (tmp, _) in &ready {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(e);
    }
    // The previous files stay reachable under a second name until every rename is done, so
    // a rename that fails half-way through the set can put the earlier ones back.
    let mut replaced: Vec<(&Path, Option<PathBuf>)> = Vec::with_capacity(ready.len());
    let mut failure = None;
    for (tmp, path) in &ready {
        let kept = match keep_previous(path) {
            Ok(kept) => kept,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        match std::fs::rename(tmp, path) {
            Ok(()) => replaced.push((path, kept)),
            Err(source) => {
                if let Some(b) = kept {
                    let _ = std::fs::remove_file(b);
                }
                failure =
                    Some(Error::Io { what: format!("cannot replace {}", path.display()), source });
                break;
            }
        }
    }
    if let Some(e) = failure {
        for (path, kept) in replaced.iter().rev() {
            let _ = match kept {
                Some(b) => std::fs::rename(b, path),
                None => std::fs::remove_file(path),
            };
        }
        for (tmp, _) in &ready {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(e);
    }
    for (_, kept) in replaced {
        if let Some(b) = kept {
            let _ = std::fs::remove_file(b);
        }
    }
    let dirs: std::collections::BTreeSet<&Path> =
        ready.iter().filter_map(|(_, p)| p.parent()).collect();
    for dir in dirs {
        // The renames are durable once their directory is synced.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Keeps the file at `path` reachable under a second name (a hard link, or a copy where
/// links are not allowed); `None` when there is no file yet.
fn keep_previous(path: &Path) -> Result<Option<PathBuf>, Error> {
    let backup = beside(path, "certhub-old");
    match std::fs::hard_link(path, &backup) {
        Ok(()) => Ok(Some(backup)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(_) => match std::fs::copy(path, &backup) {
            Ok(_) => Ok(Some(backup)),
            Err(source) => Err(Error::Io {
                what: format!("cannot keep the previous {} while replacing it", path.display()),
                source,
            }),
        },
    }
}

/// A hidden, unique name in the directory of `path`, for a file that is not there for long.
fn beside(path: &Path, what: &str) -> PathBuf {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    dir.join(format!(".{name}.{:08x}.{what}", rand::random::<u32>()))
}

/// Writes one file atomically.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32, owner: Ownership) -> Result<(), Error> {
    write_all(&[NewFile { path: path.to_owned(), data, mode }], owner)
}

/// Writes `f` to a temporary file beside it with its mode and owner; returns its path.
fn prepare(f: &NewFile<'_>, owner: Ownership) -> Result<PathBuf, Error> {
    let dir = f.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|source| Error::Io { what: format!("cannot create {}", dir.display()), source })?;
    let tmp = beside(&f.path, "certhub-tmp");
    let io =
        |what: &str, source| Error::Io { what: format!("cannot {what} {}", tmp.display()), source };
    // Created with the final mode (and no more) so the data is never readable by others.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(f.mode & 0o777)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    let written = (|| {
        file.write_all(f.data).map_err(|e| io("write", e))?;
        if owner.uid.is_some() || owner.gid.is_some() {
            std::os::unix::fs::fchown(&file, owner.uid, owner.gid)
                .map_err(|e| io("change the owner of", e))?;
        }
        // The umask may have taken bits away, and setuid bits need an explicit chmod.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(f.mode))
            .map_err(|e| io("set the mode of", e))?;
        file.sync_all().map_err(|e| io("sync", e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}
