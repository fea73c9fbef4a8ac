//! What a process started by `envc exec` runs as and with: the user and
//! group (from `--user` and the container's `/etc/passwd`), its home and
//! working directory, and its environment, as LXD builds them: the
//! profile's `environment.*`, then the caller's (`TERM`, `--env`), then
//! LXD's defaults for what is still unset.

/// LXD's `PATH` for a process it starts inside a container.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How much of the container's `/etc/passwd` is read (it is the guest's
/// file: a huge or endless one is not envc's problem to read to the end).
pub const PASSWD_LIMIT: u64 = 4 << 20;

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// The entry for `uid` in the text of a passwd file (the first, as libc's
/// `getpwuid`); malformed lines are skipped.
pub fn passwd_entry(passwd: &str, uid: u32) -> Option<PasswdEntry> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || f[2].parse::<u32>().ok()? != uid {
            return None;
        }
        Some(PasswdEntry {
            name: f[0].to_string(),
            uid,
            gid: f[3].parse().ok()?,
            home: f[5].to_string(),
            shell: f[6].to_string(),
        })
    })
}

/// `--user UID[:GID]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserSpec {
    pub uid: u32,
    pub gid: Option<u32>,
}

impl std::str::FromStr for UserSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<UserSpec, String> {
        let (u, g) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let num = |v: &str, what: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("`{v}` is not a numeric {what} (UID[:GID], numbers)"))
        };
        Ok(UserSpec {
            uid: num(u, "user id")?,
            gid: g.map(|g| num(g, "group id")).transpose()?,
        })
    }
}

/// Who the process runs as, where, and with what environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    pub env: Vec<String>,
}

/// What the caller asked for.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub user: UserSpec,
    pub cwd: Option<&'a str>,
    /// `TERM`: the caller's (`xterm` for a terminal when it has none).
    pub term: Option<&'a str>,
    /// `--env K=V`, in order (a later one wins).
    pub env: &'a [(String, String)],
}

/// The identity for `req`, given the container's init environment
/// (`K=V` entries: `container=lxc` and the profile's `environment.*`) and
/// its passwd entry for the user, if any. The group is `--user`'s, else the
/// passwd entry's, else 0; the home is the passwd entry's (`/root` for root
/// without one); the working directory is `--cwd`, else the home.
pub fn identity(req: &Request<'_>, init_env: &[String], entry: Option<&PasswdEntry>) -> Identity {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |k: &str, v: &str, env: &mut Vec<(String, String)>| match env
        .iter_mut()
        .find(|(key, _)| key == k)
    {
        Some(e) => e.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    for e in init_env {
        if let Some((k, v)) = e.split_once('=') {
            set(k, v, &mut env);
        }
    }
    if let Some(t) = req.term {
        set("TERM", t, &mut env);
    }
    for (k, v) in req.env {
        set(k, v, &mut env);
    }
    let home = match entry {
        Some(e) => Some(e.home.clone()),
        None if req.user.uid == 0 => Some("/root".to_string()),
        None => None,
    };
    let user = match entry {
        Some(e) => Some(e.name.clone()),
        None if req.user.uid == 0 => Some("root".to_string()),
        None => None,
    };
    let mut default = |k: &str, v: Option<&str>| {
        if let Some(v) = v
            && !env.iter().any(|(key, _)| key == k)
        {
            env.push((k.to_string(), v.to_string()));
        }
    };
    default("PATH", Some(DEFAULT_PATH));
    default("HOME", home.as_deref());
    default("USER", user.as_deref());
    default("LANG", Some("C.UTF-8"));
    let cwd = req
        .cwd
        .map(str::to_string)
        .or(home)
        .unwrap_or_else(|| "/".to_string());
    Identity {
        uid: req.user.uid,
        gid: req.user.gid.or(entry.map(|e| e.gid)).unwrap_or(0),
        cwd,
        env: env.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
    }
}

/// `--env K=V`.
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        broken line\n\
        bin:x:2:2:bin:/bin:/usr/sbin/nologin\n\
        user:x:1000:1001:A User:/home/user:/bin/bash\n\
        dup:x:1000:9:second:/nowhere:/bin/false\n";

    fn env_of(id: &Identity) -> Vec<&str> {
        id.env.iter().map(String::as_str).collect()
    }

    #[test]
    fn passwd_finds_the_first_entry_and_skips_bad_lines() {
        let e = passwd_entry(PASSWD, 1000).unwrap();
        assert_eq!((e.name.as_str(), e.gid), ("user", 1001));
        assert_eq!(e.home, "/home/user");
        assert_eq!(passwd_entry(PASSWD, 4242), None);
        assert_eq!(passwd_entry("a:b:c", 0), None);
    }

    #[test]
    fn root_gets_lxds_defaults_after_the_profiles_environment() {
        let init = ["container=lxc".to_string(), "FOO=bar".to_string()];
        let id = identity(&Request::default(), &init, None);
        assert_eq!((id.uid, id.gid, id.cwd.as_str()), (0, 0, "/root"));
        assert_eq!(
            env_of(&id),
            [
                "container=lxc",
                "FOO=bar",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/root",
                "USER=root",
                "LANG=C.UTF-8"
            ]
        );
    }

    #[test]
    fn a_user_takes_home_and_group_from_passwd_and_env_overrides_win() {
        let entry = passwd_entry(PASSWD, 1000);
        let extra = [
            ("FOO".to_string(), "cli".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let req = Request {
            user: "1000".parse().unwrap(),
            cwd: Some("/tmp"),
            term: Some("xterm"),
            env: &extra,
        };
        let id = identity(&req, &["FOO=profile".to_string()], entry.as_ref());
        assert_eq!((id.uid, id.gid, id.cwd.as_str()), (1000, 1001, "/tmp"));
        assert_eq!(
            env_of(&id),
            [
                "FOO=cli",
                "TERM=xterm",
                "PATH=/bin",
                "HOME=/home/user",
                "USER=user",
                "LANG=C.UTF-8"
            ]
        );
    }

    #[test]
    fn an_unknown_user_has_no_home_and_starts_in_root() {
        let req = Request {
            user: "4242:7".parse().unwrap(),
            ..Request::default()
        };
        let id = identity(&req, &[], None);
        assert_eq!((id.uid, id.gid, id.cwd.as_str()), (4242, 7, "/"));
        assert!(!id.env.iter().any(|e| e.starts_with("HOME=")));
    }

    #[test]
    fn bad_user_and_env_arguments_are_refused() {
        assert!("root".parse::<UserSpec>().is_err());
        assert!("1:x".parse::<UserSpec>().is_err());
        assert_eq!(
            "5:6".parse::<UserSpec>(),
            Ok(UserSpec {
                uid: 5,
                gid: Some(6)
            })
        );
        assert!(parse_env("novalue").is_err());
        assert!(parse_env("=x").is_err());
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
    }
}
