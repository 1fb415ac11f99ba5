//! The subscription calendar: when each period is charged, how long a paid
//! period lasts, when a subscription ends, and when a failed charge is tried
//! again (dunning).
//!
//! Pure arithmetic on instants the caller passes in: the gateway asks with
//! its own (test) clock's time.
//!
//! - A [`Plan`] is the validated billing terms: interval, count, trial and
//!   total cycles.
//! - A [`Calendar`] is a plan started at an instant. Cycle 0 is the first
//!   charge, when the trial ends (or at signup without one); cycle `n` is
//!   due `n` periods after it. Every date is computed from that first
//!   charge, never from the previous one, so a month-end anchor never
//!   drifts: started on January 31, a monthly plan bills February 28 (29 in
//!   leap years), March 31, April 30, …; a yearly plan started on February
//!   29 bills February 28 in common years and February 29 in leap years.
//!   The time of day is kept. Days are 24-hour UTC days.
//! - [`next_retry`] and [`RETRY_DELAYS`]: a failed charge is retried 3, 5
//!   and 7 days after each failure; after the fourth failed attempt the
//!   subscription is canceled.

use serde::{Deserialize, Serialize};
use time::{Date, Duration, Month, OffsetDateTime, UtcOffset};

use crate::subscription::{Interval, Subscription};

/// Why billing terms were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("interval_count must be at least 1")]
    ZeroIntervalCount,
    #[error("interval_count {given} is more than the {max} allowed for interval {interval}")]
    IntervalCountTooLarge {
        interval: Interval,
        given: u32,
        max: u32,
    },
    #[error("trial_days {given} is more than the {max} allowed", max = Plan::MAX_TRIAL_DAYS)]
    TrialTooLong { given: u32 },
    #[error("total_cycles must be at least 1; leave it out to bill until canceled")]
    ZeroTotalCycles,
    #[error("the subscription starts too close to the end of the supported date range")]
    OutOfRange,
}

/// Billing terms, valid once made: a period of 1 to [`Plan::max_interval_count`]
/// intervals, a trial of at most [`Plan::MAX_TRIAL_DAYS`] days, and either
/// at least one cycle or no limit.
///
/// In JSON it is `{"interval", "interval_count", "trial_days",
/// "total_cycles"}` (count 1, no trial and no limit when left out), and it
/// is checked on the way in: a `Plan` read from a file or a request is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PlanTerms", into = "PlanTerms")]
pub struct Plan {
    interval: Interval,
    interval_count: u32,
    trial_days: u32,
    total_cycles: Option<u32>,
}

impl Plan {
    /// The longest trial, in days: a PayPal-dialect message writes the trial
    /// as `period1 = "N D"`, and PayPal allows at most 90 days there.
    pub const MAX_TRIAL_DAYS: u32 = 90;

    /// The most intervals in one period: PayPal's limits for subscription
    /// buttons (90 days, 52 weeks, 24 months, 5 years), so `period3` in a
    /// PayPal-dialect message is one every listener accepts.
    pub const fn max_interval_count(interval: Interval) -> u32 {
        match interval {
            Interval::Day => 90,
            Interval::Week => 52,
            Interval::Month => 24,
            Interval::Year => 5,
        }
    }

    /// Checks the terms of a subscription request.
    pub fn new(
        interval: Interval,
        interval_count: u32,
        trial_days: u32,
        total_cycles: Option<u32>,
    ) -> Result<Plan, PlanError> {
        let max = Self::max_interval_count(interval);
        if interval_count == 0 {
            return Err(PlanError::ZeroIntervalCount);
        }
        if interval_count > max {
            return Err(PlanError::IntervalCountTooLarge {
                interval,
                given: interval_count,
                max,
            });
        }
        if trial_days > Self::MAX_TRIAL_DAYS {
            return Err(PlanError::TrialTooLong { given: trial_days });
        }
        if total_cycles == Some(0) {
            return Err(PlanError::ZeroTotalCycles);
        }
        Ok(Plan {
            interval,
            interval_count,
            trial_days,
            total_cycles,
        })
    }

    /// The unit of a period.
    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// Intervals per period.
    pub fn interval_count(&self) -> u32 {
        self.interval_count
    }

    /// Free days before the first charge.
    pub fn trial_days(&self) -> u32 {
        self.trial_days
    }

    /// Periods billed in all; `None` until canceled.
    pub fn total_cycles(&self) -> Option<u32> {
        self.total_cycles
    }

    /// The period in words: `month`, `3 months`.
    pub fn period(&self) -> String {
        match self.interval_count {
            1 => self.interval.as_str().to_owned(),
            n => format!("{n} {}s", self.interval.as_str()),
        }
    }
}

/// A [`Plan`] as written, before it is checked.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanTerms {
    interval: Interval,
    #[serde(default = "one")]
    interval_count: u32,
    #[serde(default)]
    trial_days: u32,
    #[serde(default)]
    total_cycles: Option<u32>,
}

fn one() -> u32 {
    1
}

impl TryFrom<PlanTerms> for Plan {
    type Error = PlanError;

    fn try_from(t: PlanTerms) -> Result<Plan, PlanError> {
        Plan::new(t.interval, t.interval_count, t.trial_days, t.total_cycles)
    }
}

impl From<Plan> for PlanTerms {
    fn from(p: Plan) -> PlanTerms {
        PlanTerms {
            interval: p.interval,
            interval_count: p.interval_count,
            trial_days: p.trial_days,
            total_cycles: p.total_cycles,
        }
    }
}

/// The terms of a stored subscription.
impl TryFrom<&Subscription> for Plan {
    type Error = PlanError;

    fn try_from(s: &Subscription) -> Result<Plan, PlanError> {
        Plan::new(s.interval, s.interval_count, s.trial_days, s.total_cycles)
    }
}

/// A plan started at an instant: the dates of its cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    plan: Plan,
    /// Signup, in UTC.
    start: OffsetDateTime,
    /// Cycle 0: the end of the trial, or `start`. Every due date is counted
    /// from here.
    anchor: OffsetDateTime,
}

impl Calendar {
    /// The calendar of a subscription that starts (signs up) at `start`,
    /// which is read in UTC.
    pub fn new(start: OffsetDateTime, plan: Plan) -> Result<Calendar, PlanError> {
        let start = start
            .checked_to_offset(UtcOffset::UTC)
            .ok_or(PlanError::OutOfRange)?;
        let anchor = start
            .checked_add(Duration::days(i64::from(plan.trial_days)))
            .ok_or(PlanError::OutOfRange)?;
        Ok(Calendar {
            plan,
            start,
            anchor,
        })
    }

    /// The calendar of a stored subscription, started at its `created_at`.
    pub fn for_subscription(subscription: &Subscription) -> Result<Calendar, PlanError> {
        Calendar::new(subscription.created_at, Plan::try_from(subscription)?)
    }

    /// The billing terms.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Signup, in UTC.
    pub fn start(&self) -> OffsetDateTime {
        self.start
    }

    /// When the trial ends; `None` without a trial.
    pub fn trial_end(&self) -> Option<OffsetDateTime> {
        (self.plan.trial_days > 0).then_some(self.anchor)
    }

    /// When cycle `cycle` (0 = the first charge) is due; `None` past the
    /// last cycle, or past the year 9999.
    pub fn due(&self, cycle: u32) -> Option<OffsetDateTime> {
        if self.plan.total_cycles.is_some_and(|total| cycle >= total) {
            return None;
        }
        self.boundary(u64::from(cycle))
    }

    /// When the period that cycle `cycle` pays for ends: the next cycle's due
    /// date, also for the last cycle. `None` for a cycle past the last one.
    pub fn period_end(&self, cycle: u32) -> Option<OffsetDateTime> {
        self.due(cycle)?;
        self.boundary(u64::from(cycle) + 1)
    }

    /// Until when a subscriber with `cycles_paid` paid periods has access
    /// (the subscription's `paid_through`): the end of the trial (or signup)
    /// when none is paid, else the end of the last paid period. `None` when
    /// more cycles are paid than the plan has.
    pub fn paid_through(&self, cycles_paid: u32) -> Option<OffsetDateTime> {
        if self
            .plan
            .total_cycles
            .is_some_and(|total| cycles_paid > total)
        {
            return None;
        }
        self.boundary(u64::from(cycles_paid))
    }

    /// When a plan with a limited number of cycles is over
    /// (`subscription.expired`): the end of its last period. `None` for a
    /// plan that bills until canceled.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.boundary(u64::from(self.plan.total_cycles?))
    }

    /// How many cycles have fallen due at `now` (a due date equal to `now`
    /// counts), so a billing run after the clock jumped ahead sees every
    /// missed cycle at once; at most the plan's total.
    pub fn cycles_due_by(&self, now: OffsetDateTime) -> u32 {
        if now < self.anchor {
            return 0;
        }
        let is_due = |k: u64| self.boundary(k).is_some_and(|at| at <= now);
        // A guess within one period of the answer, then exact steps.
        let mut k = self.periods_between(now);
        while k > 0 && !is_due(k) {
            k -= 1;
        }
        while is_due(k + 1) {
            k += 1;
        }
        let count = u32::try_from(k + 1).unwrap_or(u32::MAX);
        self.plan
            .total_cycles
            .map_or(count, |total| count.min(total))
    }

    /// About how many whole periods lie between the anchor and `now`.
    fn periods_between(&self, now: OffsetDateTime) -> u64 {
        let count = u64::from(self.plan.interval_count);
        let elapsed = |unit_days: u64| {
            let days = u64::try_from((now - self.anchor).whole_days()).unwrap_or(0);
            days / (unit_days * count)
        };
        let months = || {
            let index =
                |at: OffsetDateTime| i64::from(at.year()) * 12 + i64::from(u8::from(at.month()));
            u64::try_from(index(now) - index(self.anchor)).unwrap_or(0)
        };
        match self.plan.interval {
            Interval::Day => elapsed(1),
            Interval::Week => elapsed(7),
            Interval::Month => months() / count,
            Interval::Year => months() / (12 * count),
        }
    }

    /// The instant `periods` whole periods after the anchor.
    fn boundary(&self, periods: u64) -> Option<OffsetDateTime> {
        let units = i64::try_from(periods)
            .ok()?
            .checked_mul(i64::from(self.plan.interval_count))?;
        match self.plan.interval {
            Interval::Day => self.anchor.checked_add(Duration::days(units)),
            Interval::Week => self.anchor.checked_add(Duration::weeks(units)),
            Interval::Month => add_months(self.anchor, units),
            Interval::Year => add_months(self.anchor, units.checked_mul(12)?),
        }
    }
}

/// `at` moved by `months` calendar months, on the same day of the month, or
/// the month's last day when it is shorter; same time of day.
fn add_months(at: OffsetDateTime, months: i64) -> Option<OffsetDateTime> {
    let index = i64::from(at.year())
        .checked_mul(12)?
        .checked_add(i64::from(u8::from(at.month())) - 1)?
        .checked_add(months)?;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    let day = at.day().min(month.length(year));
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(at.replace_date(date))
}

/// How long after each failed charge of a period it is tried again: the
/// first failure is retried after 3 days, the second after 5 more, the third
/// after 7 more (15 days after the due date in all). A fourth failure cancels
/// the subscription.
pub const RETRY_DELAYS: [Duration; 3] = [Duration::days(3), Duration::days(5), Duration::days(7)];

/// The most charges of one period, first attempt included, before the
/// subscription is canceled.
pub const MAX_CHARGE_ATTEMPTS: u32 = RETRY_DELAYS.len() as u32 + 1;

/// When to try a period's charge again after `failed_attempts` failures of
/// it (1 after the first failure): the delay from the last failure, or
/// `None` when the attempts are used up and the subscription is to be
/// canceled. `None` also for 0, since there is nothing to retry.
pub fn next_retry(failed_attempts: u32) -> Option<Duration> {
    let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
    RETRY_DELAYS.get(index).copied()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    fn calendar(
        start: OffsetDateTime,
        interval: Interval,
        count: u32,
        trial_days: u32,
        total: Option<u32>,
    ) -> Calendar {
        Calendar::new(
            start,
            Plan::new(interval, count, trial_days, total).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_plan_is_checked_when_read_from_json() {
        let plan: Plan = serde_json::from_str(r#"{"interval": "month"}"#).unwrap();
        assert_eq!(plan, Plan::new(Interval::Month, 1, 0, None).unwrap());
        assert_eq!(plan.period(), "month");
        let json = serde_json::to_value(Plan::new(Interval::Week, 2, 7, Some(6)).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"interval": "week", "interval_count": 2, "trial_days": 7, "total_cycles": 6})
        );
        assert_eq!(
            serde_json::from_value::<Plan>(json).unwrap().period(),
            "2 weeks"
        );
        for bad in [
            r#"{"interval": "month", "interval_count": 0}"#,
            r#"{"interval": "day", "trial_days": 91}"#,
            r#"{"interval": "fortnight"}"#,
            r#"{"interval": "year", "extra": 1}"#,
        ] {
            assert!(serde_json::from_str::<Plan>(bad).is_err(), "{bad}");
        }
    }

    fn dues(calendar: &Calendar, cycles: u32) -> Vec<OffsetDateTime> {
        (0..cycles).map(|n| calendar.due(n).unwrap()).collect()
    }

    #[test]
    fn month_ends_are_clamped_never_drifting() {
        let c = calendar(datetime!(2027-01-31 09:30 UTC), Interval::Month, 1, 0, None);
        assert_eq!(
            dues(&c, 8),
            [
                datetime!(2027-01-31 09:30 UTC),
                datetime!(2027-02-28 09:30 UTC),
                datetime!(2027-03-31 09:30 UTC),
                datetime!(2027-04-30 09:30 UTC),
                datetime!(2027-05-31 09:30 UTC),
                datetime!(2027-06-30 09:30 UTC),
                datetime!(2027-07-31 09:30 UTC),
                datetime!(2027-08-31 09:30 UTC),
            ]
        );
        let leap = calendar(datetime!(2028-01-31 00:00 UTC), Interval::Month, 1, 0, None);
        assert_eq!(leap.due(1), Some(datetime!(2028-02-29 00:00 UTC)));
        assert_eq!(leap.due(2), Some(datetime!(2028-03-31 00:00 UTC)));
        let thirtieth = calendar(datetime!(2027-01-30 00:00 UTC), Interval::Month, 1, 0, None);
        assert_eq!(thirtieth.due(1), Some(datetime!(2027-02-28 00:00 UTC)));
        assert_eq!(thirtieth.due(2), Some(datetime!(2027-03-30 00:00 UTC)));
    }

    #[test]
    fn periods_of_every_interval() {
        let start = datetime!(2027-03-15 12:00 UTC);
        let cases = [
            (Interval::Day, 1, 3, datetime!(2027-03-18 12:00 UTC)),
            (Interval::Day, 90, 1, datetime!(2027-06-13 12:00 UTC)),
            (Interval::Week, 2, 2, datetime!(2027-04-12 12:00 UTC)),
            (Interval::Month, 3, 4, datetime!(2028-03-15 12:00 UTC)),
            (Interval::Month, 1, 12, datetime!(2028-03-15 12:00 UTC)),
            (Interval::Year, 1, 2, datetime!(2029-03-15 12:00 UTC)),
            (Interval::Year, 5, 1, datetime!(2032-03-15 12:00 UTC)),
        ];
        for (interval, count, cycle, due) in cases {
            let c = calendar(start, interval, count, 0, None);
            assert_eq!(c.due(0), Some(start));
            assert_eq!(c.due(cycle), Some(due), "{count} {interval} cycle {cycle}");
        }
    }

    #[test]
    fn leap_days_fall_back_to_february_28_in_common_years() {
        let c = calendar(datetime!(2028-02-29 08:00 UTC), Interval::Year, 1, 0, None);
        assert_eq!(
            dues(&c, 6),
            [
                datetime!(2028-02-29 08:00 UTC),
                datetime!(2029-02-28 08:00 UTC),
                datetime!(2030-02-28 08:00 UTC),
                datetime!(2031-02-28 08:00 UTC),
                datetime!(2032-02-29 08:00 UTC),
                datetime!(2033-02-28 08:00 UTC),
            ]
        );
        // 2100 is not a leap year.
        let c = calendar(datetime!(2096-02-29 00:00 UTC), Interval::Year, 4, 0, None);
        assert_eq!(c.due(1), Some(datetime!(2100-02-28 00:00 UTC)));
        assert_eq!(c.due(2), Some(datetime!(2104-02-29 00:00 UTC)));
    }

    #[test]
    fn a_trial_moves_the_anchor() {
        // Signed up January 17 with 14 free days: charged the 31st, then on
        // the last day of shorter months.
        let c = calendar(
            datetime!(2027-01-17 10:00 UTC),
            Interval::Month,
            1,
            14,
            Some(13),
        );
        assert_eq!(c.start(), datetime!(2027-01-17 10:00 UTC));
        assert_eq!(c.trial_end(), Some(datetime!(2027-01-31 10:00 UTC)));
        assert_eq!(c.paid_through(0), Some(datetime!(2027-01-31 10:00 UTC)));
        assert_eq!(c.due(0), Some(datetime!(2027-01-31 10:00 UTC)));
        assert_eq!(c.due(1), Some(datetime!(2027-02-28 10:00 UTC)));
        assert_eq!(c.period_end(0), Some(datetime!(2027-02-28 10:00 UTC)));
        assert_eq!(c.paid_through(1), Some(datetime!(2027-02-28 10:00 UTC)));
        assert_eq!(c.due(12), Some(datetime!(2028-01-31 10:00 UTC)));
        assert_eq!(c.due(13), None);
        assert_eq!(c.period_end(12), Some(datetime!(2028-02-29 10:00 UTC)));
        assert_eq!(c.period_end(13), None);
        assert_eq!(c.paid_through(13), Some(datetime!(2028-02-29 10:00 UTC)));
        assert_eq!(c.paid_through(14), None);
        assert_eq!(c.expires_at(), Some(datetime!(2028-02-29 10:00 UTC)));

        let no_trial = calendar(datetime!(2027-01-17 10:00 UTC), Interval::Week, 1, 0, None);
        assert_eq!(no_trial.trial_end(), None);
        assert_eq!(no_trial.paid_through(0), Some(no_trial.start()));
        assert_eq!(no_trial.expires_at(), None);
    }

    #[test]
    fn start_is_read_in_utc() {
        let c = calendar(
            datetime!(2027-02-01 01:00 +02:00),
            Interval::Month,
            1,
            0,
            None,
        );
        assert_eq!(c.due(0), Some(datetime!(2027-01-31 23:00 UTC)));
        assert_eq!(c.due(1), Some(datetime!(2027-02-28 23:00 UTC)));
        assert_eq!(c.due(1).unwrap().offset(), UtcOffset::UTC);
    }

    #[test]
    fn cycles_due_by_counts_what_fell_due() {
        let c = calendar(
            datetime!(2027-01-31 09:30 UTC),
            Interval::Month,
            1,
            0,
            Some(3),
        );
        let cases = [
            (datetime!(2027-01-31 09:29:59 UTC), 0),
            (datetime!(2027-01-31 09:30 UTC), 1),
            (datetime!(2027-02-28 09:29:59 UTC), 1),
            (datetime!(2027-02-28 09:30 UTC), 2),
            (datetime!(2027-03-31 09:30 UTC), 3),
            (datetime!(2030-01-01 00:00 UTC), 3),
        ];
        for (now, count) in cases {
            assert_eq!(c.cycles_due_by(now), count, "{now}");
        }
        let open = calendar(datetime!(2027-01-31 09:30 UTC), Interval::Day, 1, 0, None);
        assert_eq!(open.cycles_due_by(datetime!(2028-01-31 09:30 UTC)), 366);
    }

    #[test]
    fn plans_are_checked() {
        let cases = [
            (Interval::Month, 0, 0, None, PlanError::ZeroIntervalCount),
            (
                Interval::Day,
                91,
                0,
                None,
                PlanError::IntervalCountTooLarge {
                    interval: Interval::Day,
                    given: 91,
                    max: 90,
                },
            ),
            (
                Interval::Year,
                6,
                0,
                None,
                PlanError::IntervalCountTooLarge {
                    interval: Interval::Year,
                    given: 6,
                    max: 5,
                },
            ),
            (
                Interval::Week,
                1,
                91,
                None,
                PlanError::TrialTooLong { given: 91 },
            ),
            (Interval::Week, 1, 0, Some(0), PlanError::ZeroTotalCycles),
        ];
        for (interval, count, trial, total, error) in cases {
            assert_eq!(Plan::new(interval, count, trial, total), Err(error));
        }
        for (interval, max) in [
            (Interval::Day, 90),
            (Interval::Week, 52),
            (Interval::Month, 24),
            (Interval::Year, 5),
        ] {
            assert!(Plan::new(interval, max, Plan::MAX_TRIAL_DAYS, Some(1)).is_ok());
        }
        assert_eq!(
            PlanError::IntervalCountTooLarge {
                interval: Interval::Month,
                given: 30,
                max: 24
            }
            .to_string(),
            "interval_count 30 is more than the 24 allowed for interval month"
        );
        assert_eq!(
            PlanError::TrialTooLong { given: 91 }.to_string(),
            "trial_days 91 is more than the 90 allowed"
        );
    }

    #[test]
    fn the_edge_of_the_date_range_is_none_not_a_panic() {
        let late = calendar(datetime!(9999-06-30 00:00 UTC), Interval::Month, 1, 0, None);
        assert_eq!(late.due(6), Some(datetime!(9999-12-30 00:00 UTC)));
        assert_eq!(late.due(7), None);
        assert_eq!(late.due(u32::MAX), None);
        assert_eq!(late.cycles_due_by(datetime!(9999-12-31 23:59 UTC)), 7);
        let plan = Plan::new(Interval::Day, 1, 30, None).unwrap();
        assert_eq!(
            Calendar::new(datetime!(9999-12-15 00:00 UTC), plan),
            Err(PlanError::OutOfRange)
        );
        let year = calendar(datetime!(2027-01-01 00:00 UTC), Interval::Year, 5, 0, None);
        assert_eq!(year.due(u32::MAX), None);
    }

    #[test]
    fn failed_charges_are_retried_three_times_then_canceled() {
        let cases = [
            (0, None),
            (1, Some(Duration::days(3))),
            (2, Some(Duration::days(5))),
            (3, Some(Duration::days(7))),
            (4, None),
            (u32::MAX, None),
        ];
        for (failures, delay) in cases {
            assert_eq!(next_retry(failures), delay, "{failures}");
        }
        assert_eq!(MAX_CHARGE_ATTEMPTS, 4);
        let total: Duration = RETRY_DELAYS.iter().copied().sum();
        assert_eq!(total, Duration::days(15));
    }

    fn any_start() -> impl Strategy<Value = OffsetDateTime> {
        // 1970-01-01 .. 2199-12-31, any second of the day.
        (0i64..84_000, 0i64..86_400).prop_map(|(days, seconds)| {
            OffsetDateTime::UNIX_EPOCH + Duration::days(days) + Duration::seconds(seconds)
        })
    }

    fn any_plan() -> impl Strategy<Value = Plan> {
        (
            prop::sample::select(vec![
                Interval::Day,
                Interval::Week,
                Interval::Month,
                Interval::Year,
            ]),
            any::<prop::sample::Index>(),
            0..=Plan::MAX_TRIAL_DAYS,
        )
            .prop_map(|(interval, count, trial)| {
                let count = count.index(Plan::max_interval_count(interval) as usize) as u32 + 1;
                Plan::new(interval, count, trial, None).unwrap()
            })
    }

    proptest! {
        #[test]
        fn due_dates_strictly_increase_and_keep_the_anchor(
            start in any_start(),
            plan in any_plan(),
            cycles in 1u32..150,
        ) {
            let c = Calendar::new(start, plan).unwrap();
            let anchor = c.due(0).unwrap();
            let mut previous = None;
            for n in 0..cycles {
                let due = c.due(n).unwrap();
                prop_assert!(previous.is_none_or(|p| p < due), "cycle {} at {}", n, due);
                prop_assert_eq!(due.time(), anchor.time());
                prop_assert_eq!(c.period_end(n), c.due(n + 1));
                prop_assert_eq!(c.paid_through(n + 1), c.due(n + 1));
                match plan.interval() {
                    Interval::Month | Interval::Year => {
                        // The anchor's day, unless the month is too short.
                        let length = due.month().length(due.year());
                        prop_assert_eq!(due.day(), anchor.day().min(length));
                    }
                    Interval::Day | Interval::Week => {
                        let unit = if plan.interval() == Interval::Week { 7 } else { 1 };
                        let days = i64::from(n) * i64::from(plan.interval_count()) * unit;
                        prop_assert_eq!(due - anchor, Duration::days(days));
                    }
                }
                previous = Some(due);
            }
        }

        #[test]
        fn cycles_due_by_agrees_with_the_due_dates(
            start in any_start(),
            plan in any_plan(),
            cycle in 0u32..500,
        ) {
            let c = Calendar::new(start, plan).unwrap();
            let due = c.due(cycle).unwrap();
            prop_assert_eq!(c.cycles_due_by(due), cycle + 1);
            prop_assert_eq!(c.cycles_due_by(due - Duration::nanoseconds(1)), cycle);
        }
    }
}
