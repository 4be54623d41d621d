//! The report of `devices`: rates and goals, times and CPU, every round, and what each figure
//! means.

use tagcast_bench::stats::table;

use super::baseline::Form;
use super::fakes::Span;
use super::{DevicesArgs, GOAL_RATE, GOAL_VS_BASELINE, GRACE, Measured, Push};
use crate::compare::{fmt_int, fmt_ratio};
use crate::storage::met;

pub(super) fn report(args: &DevicesArgs, results: &[Measured]) -> String {
    let mut out = format!(
        "# {}\n\nOne push to {} devices per provider ({} per account, {} accounts), against tagcast-fakes in the benchmark's process; baseline: the same fake sent the same notifications by a minimal client, {} requests in flight. {} cores; the fastest of {} rounds of each.\n\n",
        tagcast_bench::stamp::line("tagcast-bench devices"),
        fmt_int(args.devices as f64),
        args.per_account,
        fmt_int(args.devices.div_ceil(args.per_account) as f64),
        args.in_flight,
        cores(),
        args.rounds,
    );
    out.push_str(&rates(results));
    out.push_str(&costs(results));
    out.push_str(&rounds(args, results));
    out.push_str(&verdicts(results));
    out.push_str(&notes(args));
    out
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The best push's rates with and without the grace period, and the best baseline's.
fn best(m: &Measured) -> (f64, f64, f64) {
    let n = m.devices;
    let (with, without) = m
        .best_push()
        .map_or((0.0, 0.0), |p| (p.rate(n), p.rate_after_grace(n)));
    (with, without, m.best_baseline().map_or(0.0, |b| b.rate(n)))
}

/// Notifications per second, and the goals.
fn rates(results: &[Measured]) -> String {
    let mut rows = vec![vec![
        "provider".to_string(),
        "tagcast, push -> last, 1 s grace included [1]".into(),
        "tagcast, grace excluded [1]".into(),
        "baseline [2]".into(),
        "tagcast (grace excluded) / baseline".into(),
        format!(
            "goal >= {}/s (grace included / excluded)",
            fmt_int(GOAL_RATE)
        ),
        "goal: within 2x of the baseline".into(),
    ]];
    for m in results {
        let (with, without, base) = best(m);
        rows.push(vec![
            m.provider.label().into(),
            fmt_int(with),
            fmt_int(without),
            fmt_int(base),
            fmt_ratio(without, base),
            format!("{} / {}", met(with >= GOAL_RATE), met(without >= GOAL_RATE)),
            met(without * GOAL_VS_BASELINE >= base).into(),
        ]);
    }
    format!("Notifications per second:\n\n{}\n", table(&rows))
}

/// CPU seconds, and microseconds per notification.
fn per(secs: f64, n: usize) -> String {
    format!("{secs:.2} s ({:.0} us)", secs * 1e6 / n as f64)
}

/// Times and CPU of the best push and the best baseline.
fn costs(results: &[Measured]) -> String {
    let mut rows = vec![vec![
        "provider".to_string(),
        "push answered, ms".into(),
        "push -> first / last notification, s [1]".into(),
        "CPU: tagcast (per notification) [3]".into(),
        "CPU: fake, during tagcast's push [3]".into(),
        "machine busy during the push, cores".into(),
        "CPU: baseline client [3]".into(),
        "CPU: fake, during the baseline [3]".into(),
        "machine busy during the baseline, cores".into(),
        "stalls >= 2 ms, tagcast / baseline: count, s [5]".into(),
        "registration: devices/s, s (accounts imported, s) [4]".into(),
    ]];
    for m in results {
        let n = m.devices;
        let dash = || "-".to_string();
        let push = |f: &dyn Fn(&Push) -> String| m.best_push().map_or_else(dash, f);
        let base = m.best_baseline();
        rows.push(vec![
            m.provider.label().into(),
            push(&|p| format!("{:.1}", p.answered.as_secs_f64() * 1e3)),
            push(&|p| format!("{:.3} / {:.2}", p.first.as_secs_f64(), p.last.as_secs_f64())),
            push(&|p| per(p.cpu.tagcast, n)),
            push(&|p| per(p.cpu.fake, n)),
            push(&|p| format!("{:.2} of {}", p.cpu.machine / p.last.as_secs_f64(), cores())),
            base.map_or_else(dash, |b| per(b.client_cpu, n)),
            base.map_or_else(dash, |b| per(b.fake_cpu, n)),
            base.map_or_else(dash, |b| {
                format!("{:.2} of {}", b.machine / b.elapsed.as_secs_f64(), cores())
            }),
            format!(
                "{} / {}",
                push(&|p| stalls(&p.span)),
                base.map_or_else(dash, |b| stalls(&b.span))
            ),
            format!(
                "{} in {:.1} ({:.1})",
                fmt_int(n as f64 / m.registered.as_secs_f64().max(1e-9)),
                m.registered.as_secs_f64(),
                m.imported.as_secs_f64()
            ),
        ]);
    }
    format!("\nTimes and CPU (the fastest round):\n\n{}\n", table(&rows))
}

fn stalls(span: &Span) -> String {
    format!("{}, {:.2}", span.stalls, span.stalled.as_secs_f64())
}

/// Every round: tagcast's push, then the baseline (every form in the first round).
fn rounds(args: &DevicesArgs, results: &[Measured]) -> String {
    let mut rows = vec![vec![
        "provider".to_string(),
        "round".into(),
        "tagcast /s, grace included / excluded".into(),
        "tagcast CPU per notification, us".into(),
        "baseline form [2]".into(),
        "baseline /s".into(),
        "baseline client CPU per notification, us".into(),
    ]];
    for m in results {
        let n = m.devices as f64;
        for (round, push) in m.pushes.iter().enumerate() {
            let runs = m.baselines.iter().filter(|(r, _)| *r == round);
            for (i, (_, b)) in runs.enumerate() {
                let first = i == 0;
                rows.push(vec![
                    if first {
                        m.provider.label().into()
                    } else {
                        String::new()
                    },
                    if first {
                        (round + 1).to_string()
                    } else {
                        String::new()
                    },
                    if first {
                        format!(
                            "{} / {}",
                            fmt_int(push.rate(m.devices)),
                            fmt_int(push.rate_after_grace(m.devices))
                        )
                    } else {
                        String::new()
                    },
                    if first {
                        format!("{:.0}", push.cpu.tagcast * 1e6 / n)
                    } else {
                        String::new()
                    },
                    b.form.describe(args.in_flight),
                    fmt_int(b.rate(m.devices)),
                    format!("{:.0}", b.client_cpu * 1e6 / n),
                ]);
            }
        }
    }
    format!("\nEvery round:\n\n{}\n", table(&rows))
}

/// Met or not per provider, and why.
fn verdicts(results: &[Measured]) -> String {
    let mut out = String::from(
        "\nGoals (issue 10: >= 20,000 notifications/s per provider on this machine, within 2x of the minimal client):\n\n",
    );
    for m in results {
        let (with, without, base) = best(m);
        out.push_str(&format!(
            "- {}: {}/s with the grace period ({}), {}/s without ({}); {} of the baseline ({}): {}.\n",
            m.provider.label(),
            fmt_int(with),
            met(with >= GOAL_RATE),
            fmt_int(without),
            met(without >= GOAL_RATE),
            fmt_ratio(without, base),
            met(without * GOAL_VS_BASELINE >= base),
            why(m, with, without, base),
        ));
    }
    if let Some(web) = results.iter().find(|m| m.made.as_secs_f64() >= 1.0) {
        out.push_str(&format!(
            "\nMaking the {} Web Push subscriptions at the fake (a P-256 key pair each) took {:.1} s, not counted.\n",
            fmt_int(web.devices as f64),
            web.made.as_secs_f64()
        ));
    }
    out
}

/// Why a goal is met or not, from the figures.
fn why(m: &Measured, with: f64, without: f64, base: f64) -> String {
    let cpu = |secs: f64| secs * 1e6 / m.devices as f64;
    let (tagcast, fake) = m
        .best_push()
        .map_or((0.0, 0.0), |p| (cpu(p.cpu.tagcast), cpu(p.cpu.fake)));
    let client = m.best_baseline().map_or(0.0, |b| cpu(b.client_cpu));
    let mut reasons = Vec::new();
    if without * GOAL_VS_BASELINE < base {
        let library = m
            .baselines
            .iter()
            .find(|(_, b)| b.form == Form::Reqwest)
            .map_or(String::new(), |(_, b)| {
                format!(
                    " (the minimal sender on reqwest: {}/s)",
                    fmt_int(b.rate(m.devices))
                )
            });
        reasons.push(format!(
            "tagcast is {} slower than the minimal client, with {tagcast:.0} us of CPU per notification against the client's {client:.0} us{library}",
            fmt_ratio(base, without)
        ));
    }
    if without < GOAL_RATE && base < GOAL_RATE {
        reasons.push(format!(
            "even the minimal client reaches only {}/s here, where it and the fake ({fake:.0} us per notification) share {} cores",
            fmt_int(base),
            cores()
        ));
    } else if without < GOAL_RATE && without * GOAL_VS_BASELINE >= base {
        reasons.push(format!(
            "tagcast spends {tagcast:.0} us of CPU per notification and the fake {fake:.0} us on {} cores",
            cores()
        ));
    }
    if with < GOAL_RATE && without >= GOAL_RATE {
        let window = m.devices as f64 / GOAL_RATE - GRACE.as_secs_f64();
        reasons.push(match window > 0.0 {
            true => format!(
                "with the 1 s grace period counted, {}/s to {} devices needs {}/s once sending",
                fmt_int(GOAL_RATE),
                fmt_int(m.devices as f64),
                fmt_int(m.devices as f64 / window)
            ),
            false => "the 1 s grace period alone is longer than the goal allows".into(),
        });
    }
    match reasons.is_empty() {
        true => "met".into(),
        false => reasons.join("; "),
    }
}

fn notes(args: &DevicesArgs) -> String {
    format!(
        "
[1] From the push request to the fake's taking of the last notification (the fake's clock, in the same process), nothing subtracted; \"grace excluded\" takes off the notifier's 1 s wait after a push (delivery/notifier.rs GRACE), during which it sends nothing by design. The first notification comes after the grace period, the notifier's next poll (every 200 ms when idle) and the reading of its first batch (200 accounts).
[2] The same fake, the same devices, the same notifications (tagcast-push's builders: the APNs provider token and the FCM access token reused, each Web Push body encrypted to its subscription, the VAPID header signed once per origin as tagcast does), sent by hyper with {in_flight} requests in flight and nothing else: no store, no batches. Timed from the first request (connections open) to the fake's last arrival. HTTP/2 over one connection (as tagcast sends APNs and FCM: tagcast_push::h2); for the plain-text fakes (FCM, Web Push) also HTTP/1.1 over {in_flight} connections, which is what tagcast's Web Push client (reqwest) uses for a plain http:// endpoint; and, for every provider, the same workers sending through reqwest (tagcast_push::client and send, as tagcast sends Web Push), which tells what a pooled general client costs. The first round times every form, later rounds the fastest; the baseline is the fastest.
[3] CPU seconds (user + system, /proc, 10 ms ticks): tagcast's process; the fake's runtime threads ({threads}, in the benchmark's process); the baseline client's runtime threads ({threads}). Per notification in parentheses. The fake's cost is that of a strict check of every request (APNs: the ES256 provider token verified once, then its age; FCM: the access token; Web Push: the VAPID signature verified once per distinct header, then its expiry, and every body decrypted: one P-256 ECDH). Everything runs on the same {cores} cores; \"machine busy\" counts every process, the benchmark's own and any other.
[4] multiaccount_import of the accounts, then one device_register per device (the admin naming To_Account), {concurrency} at a time; not part of the figures above.
[5] Pauses of 2 ms or more between two consecutive notifications at the fake (they come every 0.05 to 0.5 ms while a sender sends), and their total: the time the sender sent nothing, between the first notification and the last.
",
        in_flight = args.in_flight,
        threads = args.threads,
        cores = cores(),
        concurrency = args.register_concurrency,
    )
}
