"""The demo clinic: big enough to be real, and seeding twice changes nothing."""

from datetime import timedelta

from sqlalchemy import func, select

from clinic import scheduling
from clinic.demo import seed
from clinic.models import Contact, ContactPatient, Location, Practitioner, Relationship, Slot, Specialty
from tests.conftest import DEMO_NOW, DEMO_TODAY


def snapshot(db):
    with db.transaction() as s:
        tables = (Location, Specialty, Practitioner, Slot, ContactPatient)
        return {t.__name__: s.scalar(select(func.count()).select_from(t)) for t in tables}


def test_demo_clinic_has_what_the_demo_needs(any_demo_db):
    counts = snapshot(any_demo_db)
    assert counts["Location"] >= 2 and counts["Practitioner"] >= 8 and counts["Specialty"] >= 5
    with any_demo_db.transaction() as s:
        last_slot = s.scalar(select(func.max(Slot.start_at)))
        specialties_with_staff = s.scalar(select(func.count(func.distinct(Specialty.id))).select_from(
            Practitioner).join(Practitioner.specialties))
        parent = s.scalars(select(Contact).where(Contact.wa_id == "393330000002")).one()
        relations = {link.relation for link in parent.links}
    assert specialties_with_staff >= 5
    assert last_slot.date() >= DEMO_TODAY + timedelta(days=19)  # three weeks of slots
    assert relations == {Relationship.self, Relationship.parent}  # one contact, two patients
    for specialty in ("cardiology", "dermatology", "ophthalmology", "orthopaedics", "paediatrics"):
        query = scheduling.SlotQuery(*scheduling.day_window(DEMO_TODAY, DEMO_TODAY + timedelta(days=6)), specialty)
        assert scheduling.free_slots(any_demo_db, query, now=DEMO_NOW), specialty


def test_seeding_again_changes_nothing(any_demo_db):
    before = snapshot(any_demo_db)
    seed(any_demo_db, today=DEMO_TODAY)
    assert snapshot(any_demo_db) == before


def test_seeding_keeps_existing_bookings(demo_db):
    query = scheduling.SlotQuery(*scheduling.day_window(DEMO_TODAY), "cardiology")
    slot = scheduling.free_slots(demo_db, query, now=DEMO_NOW)[0]
    appointment = scheduling.book(demo_db, patient_id=1, slot_id=slot.id, actor="t", now=DEMO_NOW)
    seed(demo_db, today=DEMO_TODAY)
    assert scheduling.upcoming_appointments(demo_db, [1], now=DEMO_NOW) == [appointment]


def test_each_specialty_carries_the_follow_up_the_clinic_file_gives_it(demo_db, tmp_path):
    from clinic.demo import DEMO_FILE

    with demo_db.reading() as s:
        followups = {k: (f, b) for k, f, b in s.execute(select(Specialty.key, Specialty.followup,
                                                               Specialty.followup_book))}
    assert followups["cardiology"] == ("next_checkup", None)
    assert followups["general_practice"] == ("followup_test", "blood_tests")
    assert followups["blood_tests"] == (None, None)
    edited = tmp_path / "clinic.yml"
    edited.write_text(DEMO_FILE.read_text(encoding="utf-8").replace("    followup: next_checkup\n", "", 1),
                      encoding="utf-8")
    seed(demo_db, today=DEMO_TODAY, source=edited)
    with demo_db.reading() as s:
        assert s.scalar(select(Specialty.followup).where(Specialty.key == "cardiology")) is None
