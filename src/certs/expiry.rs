//! `boot certs check-expiration`'s tables, as kubeadm prints them (renewal/manager.go and
//! cmd/kubeadm/app/cmd/certs.go): one row per renewable certificate, sorted by name, then one row
//! per CA. Pure: facts in, rows and text out.

use std::time::Duration;

use serde::Serialize;

/// A CA is warned about this long before it expires: it is never renewed automatically.
pub const CA_WARNING: Duration = Duration::from_secs(90 * 24 * 3600);

/// One certificate as found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertRow {
    /// kubeadm's name: `apiserver`, `admin.conf`, `etcd-ca`, …
    pub name: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The CA that signs it (`ca`, `etcd-ca`, `front-proxy-ca`); empty for a CA itself.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// Its CA's key is not on this machine (external CA mode).
    pub externally_managed: bool,
}

/// Where a certificate stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Standing {
    Valid,
    /// Inside the renewal window (a leaf) or the warning window (a CA).
    RenewalDue,
    Expired,
}

impl CertRow {
    /// A leaf is due once less than `renew_before` is left; `None` means a third of its
    /// validity period, boot's default (`BootConfiguration.certificates.renewBefore`).
    pub fn leaf_standing(&self, now: i64, renew_before: Option<Duration>) -> Standing {
        let window = renew_before
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or_else(|| (self.not_after - self.not_before).max(0) / 3);
        self.standing(now, window)
    }

    pub fn ca_standing(&self, now: i64) -> Standing {
        self.standing(now, CA_WARNING.as_secs() as i64)
    }

    fn standing(&self, now: i64, window: i64) -> Standing {
        if now >= self.not_after {
            Standing::Expired
        } else if self.not_after.saturating_sub(now) <= window {
            Standing::RenewalDue
        } else {
            Standing::Valid
        }
    }
}

/// apimachinery's `duration.ShortHumanDuration`, which kubeadm prints as RESIDUAL TIME.
pub fn short_human_duration(seconds: i64) -> String {
    match seconds {
        s if s < -1 => "<invalid>".into(),
        s if s < 0 => "0s".into(),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s if s < 365 * 86_400 => format!("{}d", s / 86_400),
        s => format!("{}y", s / (365 * 86_400)),
    }
}

/// Go's `Jan 02, 2006 15:04 MST` in UTC, kubeadm's EXPIRES column.
pub fn expires(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{} {:02}, {} {:02}:{:02} UTC",
            MONTHS[usize::from(u8::from(t.month())) - 1],
            t.day(),
            t.year(),
            t.hour(),
            t.minute()
        ),
        Err(_) => unix.to_string(),
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// Both tables as kubeadm lays them out (tabwriter, two spaces between columns).
pub fn render_tables(leaves: &[CertRow], cas: &[CertRow], now: i64) -> String {
    let mut out = table(
        &[
            "CERTIFICATE",
            "EXPIRES",
            "RESIDUAL TIME",
            "CERTIFICATE AUTHORITY",
            "EXTERNALLY MANAGED",
        ],
        leaves.iter().map(|row| {
            vec![
                row.name.clone(),
                expires(row.not_after),
                short_human_duration(row.not_after - now),
                row.authority.clone(),
                yes_no(row.externally_managed).into(),
            ]
        }),
    );
    out.push('\n');
    out.push_str(&table(
        &[
            "CERTIFICATE AUTHORITY",
            "EXPIRES",
            "RESIDUAL TIME",
            "EXTERNALLY MANAGED",
        ],
        cas.iter().map(|row| {
            vec![
                row.name.clone(),
                expires(row.not_after),
                short_human_duration(row.not_after - now),
                yes_no(row.externally_managed).into(),
            ]
        }),
    ));
    out
}

fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(rows)
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|col| rows.iter().map(|r| r[col].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let last = row.len() - 1;
        for (col, cell) in row.iter().enumerate() {
            if col == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}   ", width = widths[col]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn row(name: &str, not_before: i64, not_after: i64) -> CertRow {
        CertRow {
            name: name.into(),
            not_before,
            not_after,
            authority: "ca".into(),
            externally_managed: false,
        }
    }

    #[test]
    fn residual_time_reads_as_kubeadm_prints_it() {
        assert_eq!(short_human_duration(-5), "<invalid>");
        assert_eq!(short_human_duration(-1), "0s");
        assert_eq!(short_human_duration(59), "59s");
        assert_eq!(short_human_duration(61), "1m");
        assert_eq!(short_human_duration(7200), "2h");
        assert_eq!(short_human_duration(364 * DAY + 3600), "364d");
        assert_eq!(short_human_duration(3650 * DAY), "10y");
    }

    #[test]
    fn expiry_column_is_go_layout_in_utc() {
        assert_eq!(
            expires(1_767_225_600 + 3 * 3600 + 4 * 60),
            "Jan 01, 2026 03:04 UTC"
        );
    }

    #[test]
    fn renewal_window_defaults_to_a_third_of_the_validity() {
        let leaf = row("apiserver", 0, 300 * DAY);
        assert_eq!(leaf.leaf_standing(199 * DAY, None), Standing::Valid);
        assert_eq!(leaf.leaf_standing(200 * DAY, None), Standing::RenewalDue);
        assert_eq!(leaf.leaf_standing(300 * DAY, None), Standing::Expired);
        let window = Some(Duration::from_secs(10 * DAY as u64));
        assert_eq!(leaf.leaf_standing(280 * DAY, window), Standing::Valid);
        assert_eq!(leaf.leaf_standing(290 * DAY, window), Standing::RenewalDue);
        let huge = Some(Duration::from_secs(u64::MAX));
        assert_eq!(leaf.leaf_standing(0, huge), Standing::RenewalDue);
    }

    #[test]
    fn cas_are_warned_about_ninety_days_ahead() {
        let ca = row("ca", 0, 3650 * DAY);
        assert_eq!(ca.ca_standing(3559 * DAY), Standing::Valid);
        assert_eq!(ca.ca_standing(3560 * DAY), Standing::RenewalDue);
    }

    #[test]
    fn tables_have_kubeadm_headers_and_aligned_columns() {
        let now = 0;
        let text = render_tables(
            &[
                row("admin.conf", 0, 365 * DAY),
                row("apiserver", 0, 10 * DAY),
            ],
            &[CertRow {
                authority: String::new(),
                externally_managed: true,
                ..row("ca", 0, 3650 * DAY)
            }],
            now,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("CERTIFICATE   EXPIRES"), "{text}");
        assert!(
            lines[1].starts_with("admin.conf    Jan 01, 1971 00:00 UTC   1y"),
            "{text}"
        );
        assert!(lines[2].contains("10d"), "{text}");
        assert_eq!(lines[3], "");
        assert!(
            lines[4].starts_with("CERTIFICATE AUTHORITY   EXPIRES"),
            "{text}"
        );
        assert!(lines[5].ends_with("yes"), "{text}");
    }
}
