//! The queue over the last hour, minute by minute, from what the batches table records:
//! when each batch was accepted and when it completed. No history is sampled or stored —
//! the depth at the end of a minute is today's depth with the later arrivals taken off and
//! the later completions put back.

use chrono::{NaiveDateTime, TimeDelta, Timelike};

/// Batches that arrived, or completed, in one minute, and their records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    /// The minute's start (seconds zero).
    pub minute: NaiveDateTime,
    pub batches: i64,
    /// Records the batches carried.
    pub records: i64,
    /// Of those, once COMPLETE: applied (unchanged included), and not applied.
    pub applied: i64,
    pub rejected: i64,
}

/// One minute of the series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinutePoint {
    pub minute: NaiveDateTime,
    pub accepted_batches: i64,
    pub completed_batches: i64,
    pub records_applied: i64,
    pub records_rejected: i64,
    /// Unfinished batches (PENDING or RUNNING) at the minute's end (now, for this minute),
    /// and their records.
    pub queued_batches: i64,
    pub queued_records: i64,
}

/// The start of `t`'s minute.
pub fn minute_of(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("second 0 exists")
}

/// The `minutes` minutes up to and including now's, oldest first, every one present (zero
/// when nothing happened). `queued_now` is the queue's depth now (batches, records);
/// `accepted` and `completed` are per-minute counts of at least that span — minutes
/// outside it are ignored.
pub fn minute_series(
    now: NaiveDateTime,
    minutes: usize,
    queued_now: (i64, i64),
    accepted: &[MinuteCounts],
    completed: &[MinuteCounts],
) -> Vec<MinutePoint> {
    let last = minute_of(now);
    let first = last - TimeDelta::minutes(minutes.saturating_sub(1) as i64);
    let slot = |t: NaiveDateTime| {
        let t = minute_of(t);
        (t >= first && t <= last).then(|| (t - first).num_minutes() as usize)
    };
    let mut points: Vec<MinutePoint> = (0..minutes)
        .map(|i| MinutePoint {
            minute: first + TimeDelta::minutes(i as i64),
            ..MinutePoint::default()
        })
        .collect();
    for c in accepted {
        if let Some(i) = slot(c.minute) {
            points[i].accepted_batches += c.batches;
            // Kept here for the walk back below; replaced by the depth there.
            points[i].queued_records += c.records;
        }
    }
    let mut completed_records = vec![0; minutes];
    for c in completed {
        if let Some(i) = slot(c.minute) {
            points[i].completed_batches += c.batches;
            points[i].records_applied += c.applied;
            points[i].records_rejected += c.rejected;
            completed_records[i] += c.records;
        }
    }
    // Walking back from now: the depth at the end of minute i-1 is the depth at the end of
    // minute i less what arrived in minute i, plus what completed in it.
    let (mut batches, mut records) = queued_now;
    for i in (0..minutes).rev() {
        let arrived_records = points[i].queued_records;
        points[i].queued_batches = batches.max(0);
        points[i].queued_records = records.max(0);
        batches += points[i].completed_batches - points[i].accepted_batches;
        records += completed_records[i] - arrived_records;
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(h: u32, m: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 1)
            .unwrap()
            .and_hms_opt(h, m, s)
            .unwrap()
    }

    fn counts(minute: NaiveDateTime, batches: i64, records: i64, applied: i64) -> MinuteCounts {
        MinuteCounts {
            minute,
            batches,
            records,
            applied,
            rejected: records - applied,
        }
    }

    #[test]
    fn every_minute_is_present_oldest_first_ending_with_now() {
        let points = minute_series(at(10, 30, 42), 60, (0, 0), &[], &[]);
        assert_eq!(points.len(), 60);
        assert_eq!(points[0].minute, at(9, 31, 0));
        assert_eq!(points[59].minute, at(10, 30, 0));
        assert!(points.iter().all(|p| *p
            == MinutePoint {
                minute: p.minute,
                ..MinutePoint::default()
            }));
    }

    #[test]
    fn depth_walks_back_from_now() {
        // 10:28 two batches (10 records) arrive; 10:29 one of them completes (4 of 5
        // applied); now (10:30) one more arrives. Queue now: 2 batches, 5 + 7 records.
        let accepted = [
            counts(at(10, 28, 0), 2, 10, 0),
            counts(at(10, 30, 0), 1, 7, 0),
        ];
        let completed = [counts(at(10, 29, 0), 1, 5, 4)];
        let points = minute_series(at(10, 30, 5), 4, (2, 12), &accepted, &completed);
        let depth: Vec<_> = points
            .iter()
            .map(|p| (p.queued_batches, p.queued_records))
            .collect();
        assert_eq!(depth, [(0, 0), (2, 10), (1, 5), (2, 12)]);
        assert_eq!(
            (points[2].completed_batches, points[2].records_applied),
            (1, 4)
        );
        assert_eq!(points[2].records_rejected, 1);
        assert_eq!(points[1].accepted_batches, 2);
    }

    #[test]
    fn minutes_outside_the_span_are_ignored() {
        let accepted = [counts(at(9, 0, 0), 5, 5, 0), counts(at(11, 0, 0), 5, 5, 0)];
        let points = minute_series(at(10, 30, 0), 2, (1, 1), &accepted, &[]);
        assert_eq!(points.iter().map(|p| p.accepted_batches).sum::<i64>(), 0);
        assert!(points.iter().all(|p| p.queued_batches == 1));
    }
}
