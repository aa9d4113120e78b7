"""Joining the waitlist: one entry per target, merged date ranges, clear refusals."""

from datetime import date

import pytest

from clinic import waitlist
from clinic.catalog import practitioner_id
from clinic.scheduling import SchedulingError, UnknownPatient

GIOVANNI = 1


def test_a_patient_joins_for_a_specialty(any_demo_db):
    entry = waitlist.join(any_demo_db, patient_id=GIOVANNI, specialty="cardiology",
                          wanted_from=date(2027, 3, 8), wanted_until=date(2027, 3, 12))
    assert (entry.specialty, entry.wanted_from, entry.wanted_until) == ("cardiology", date(2027, 3, 8),
                                                                        date(2027, 3, 12))
    assert waitlist.entries(any_demo_db, GIOVANNI) == [entry]


def test_joining_again_for_the_same_target_widens_the_one_entry(any_demo_db):
    first = waitlist.join(any_demo_db, patient_id=GIOVANNI, specialty="cardiology",
                          wanted_from=date(2027, 3, 8), wanted_until=date(2027, 3, 12))
    again = waitlist.join(any_demo_db, patient_id=GIOVANNI, specialty="cardiology",
                          wanted_from=date(2027, 3, 15), wanted_until=date(2027, 3, 10))
    assert again.id == first.id
    assert (again.wanted_from, again.wanted_until) == (date(2027, 3, 8), date(2027, 3, 15))
    assert len(waitlist.entries(any_demo_db, GIOVANNI)) == 1


def test_a_doctor_and_a_specialty_are_different_targets(any_demo_db):
    doctor = practitioner_id(any_demo_db, "bianchi")
    waitlist.join(any_demo_db, patient_id=GIOVANNI, specialty="cardiology",
                  wanted_from=date(2027, 3, 8), wanted_until=date(2027, 3, 8))
    by_doctor = waitlist.join(any_demo_db, patient_id=GIOVANNI, practitioner_id=doctor,
                              wanted_from=date(2027, 3, 8), wanted_until=date(2027, 3, 8))
    assert by_doctor.specialty is None and by_doctor.practitioner_id == doctor
    assert len(waitlist.entries(any_demo_db, GIOVANNI)) == 2


@pytest.mark.parametrize(
    ("patient", "specialty", "error"),
    [(GIOVANNI, None, SchedulingError), (GIOVANNI, "astrology", SchedulingError), (999, "cardiology", UnknownPatient)],
)
def test_refusals_name_no_patient_data(any_demo_db, patient, specialty, error):
    with pytest.raises(error):
        waitlist.join(any_demo_db, patient_id=patient, specialty=specialty,
                      wanted_from=date(2027, 3, 8), wanted_until=date(2027, 3, 8))
    assert waitlist.entries(any_demo_db, GIOVANNI) == []
