"""Writes the NIBRS conformance fixtures (synthetic incidents)."""
import os, sys
base = sys.argv[1]
HEAD = '''<?xml version="1.0" encoding="UTF-8"?>
<nibrs:Submission xmlns:nibrs="http://fbi.gov/cjis/nibrs/2019" xmlns:cjis="http://fbi.gov/cjis/2.0"
  xmlns:j="http://release.niem.gov/niem/domains/jxdm/5.2/" xmlns:nc="http://release.niem.gov/niem/niem-core/3.0/"
  xmlns:s="http://release.niem.gov/niem/structures/3.0/">
  <cjis:MessageMetadata>
    <cjis:MessageDateTime>2026-11-01T08:00:00</cjis:MessageDateTime>
  </cjis:MessageMetadata>
'''
TAIL = '</nibrs:Submission>\n'

def header(action="I", category="GROUP A INCIDENT REPORT", ori="CA0190000"):
    return f'''    <nibrs:ReportHeader>
      <nibrs:NIBRSReportCategoryCode>{category}</nibrs:NIBRSReportCategoryCode>
      <nibrs:ReportActionCategoryCode>{action}</nibrs:ReportActionCategoryCode>
      <nibrs:ReportingAgency><j:OrganizationAugmentation><j:OrganizationORIIdentification>
        <nc:IdentificationID>{ori}</nc:IdentificationID>
      </j:OrganizationORIIdentification></j:OrganizationAugmentation></nibrs:ReportingAgency>
    </nibrs:ReportHeader>
'''

def incident(number, date, victims, address=None, offense="13B"):
    """victims: list of dicts: age, sex, relationship, name=(surname, given, dob) or None, circumstance."""
    out = ['  <nibrs:Report>\n', header()]
    if number is not None:
        out.append(f'''    <nc:Incident>
      <nc:ActivityIdentification><nc:IdentificationID>{number}</nc:IdentificationID></nc:ActivityIdentification>
      <nc:ActivityDate><nc:DateTime>{date}T21:40:00</nc:DateTime></nc:ActivityDate>
    </nc:Incident>
''')
    out.append(f'''    <j:Offense s:id="Offense1">
      <nibrs:OffenseUCRCode>{offense}</nibrs:OffenseUCRCode>
      <j:OffenseAttemptedIndicator>false</j:OffenseAttemptedIndicator>
    </j:Offense>
''')
    if address:
        out.append(f'''    <nc:Location s:id="Location1">
      <nc:Address>
        <nc:LocationStreet><nc:StreetFullText>{address[0]}</nc:StreetFullText></nc:LocationStreet>
        <nc:LocationCityName>{address[1]}</nc:LocationCityName>
      </nc:Address>
      <nibrs:LocationCategoryCode>20</nibrs:LocationCategoryCode>
    </nc:Location>
''')
    else:
        out.append('    <nc:Location s:id="Location1"><nibrs:LocationCategoryCode>20</nibrs:LocationCategoryCode></nc:Location>\n')
    for i, v in enumerate(victims, 1):
        name = ''
        if v.get('name'):
            s, g, dob = v['name']
            name = f'''      <nc:PersonBirthDate><nc:Date>{dob}</nc:Date></nc:PersonBirthDate>
      <nc:PersonName><nc:PersonGivenName>{g}</nc:PersonGivenName><nc:PersonSurName>{s}</nc:PersonSurName></nc:PersonName>
'''
        out.append(f'''    <nc:Person s:id="PersonVictim{i}">
{name}      <nc:PersonAgeMeasure><nc:MeasureIntegerValue>{v['age']}</nc:MeasureIntegerValue></nc:PersonAgeMeasure>
      <j:PersonSexCode>{v['sex']}</j:PersonSexCode>
    </nc:Person>
''')
    out.append('''    <nc:Person s:id="PersonSubject1">
      <nc:PersonAgeMeasure><nc:MeasureIntegerValue>35</nc:MeasureIntegerValue></nc:PersonAgeMeasure>
      <j:PersonSexCode>M</j:PersonSexCode>
    </nc:Person>
''')
    for i, v in enumerate(victims, 1):
        circ = f"      <j:VictimAggravatedAssaultHomicideFactorCode>{v['circumstance']}</j:VictimAggravatedAssaultHomicideFactorCode>\n" if v.get('circumstance') else ''
        out.append(f'''    <j:Victim s:id="Victim{i}">
      <nc:RoleOfPerson s:ref="PersonVictim{i}"/>
      <j:VictimSequenceNumberText>{i}</j:VictimSequenceNumberText>
      <j:VictimCategoryCode>I</j:VictimCategoryCode>
{circ}    </j:Victim>
''')
    out.append('''    <j:Subject s:id="Subject1">
      <nc:RoleOfPerson s:ref="PersonSubject1"/>
      <j:SubjectSequenceNumberText>1</j:SubjectSequenceNumberText>
    </j:Subject>
    <j:OffenseLocationAssociation><j:Offense s:ref="Offense1"/><nc:Location s:ref="Location1"/></j:OffenseLocationAssociation>
''')
    for i, v in enumerate(victims, 1):
        out.append(f'''    <j:OffenseVictimAssociation><j:Offense s:ref="Offense1"/><j:Victim s:ref="Victim{i}"/></j:OffenseVictimAssociation>
    <j:SubjectVictimAssociation>
      <j:Subject s:ref="Subject1"/>
      <j:Victim s:ref="Victim{i}"/>
      <nibrs:VictimToSubjectRelationshipCode>{v['relationship']}</nibrs:VictimToSubjectRelationshipCode>
    </j:SubjectVictimAssociation>
''')
    out.append('  </nibrs:Report>\n')
    return ''.join(out)

def delete(number):
    return f'''  <nibrs:Report>
{header(action="D")}    <nc:Incident>
      <nc:ActivityIdentification><nc:IdentificationID>{number}</nc:IdentificationID></nc:ActivityIdentification>
    </nc:Incident>
  </nibrs:Report>
'''

def write(case, name, *reports, head=HEAD):
    d = os.path.join(base, case, 'input')
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), 'w').write(head + ''.join(reports) + TAIL)

ANA = ('Rivera', 'Ana', '1991-04-12')
HOME = ('221 Alder Court, Apt 4', 'Fresno')
dv = dict(age=34, sex='F', relationship='Boyfriend_Girlfriend', name=ANA)
write('domestic-violence-referral', 'incident.xml',
      incident('2026-004411', '2026-10-30', [dv, dict(age=41, sex='M', relationship='Stranger')], address=HOME))
write('repeat-incidents', '1-old.xml', incident('2024-000100', '2024-01-05', [dv], address=HOME))
write('repeat-incidents', '2-first.xml', incident('2025-012001', '2025-12-01', [dv], address=HOME))
write('repeat-incidents', '3-second.xml', incident('2026-002300', '2026-03-10', [dict(dv, name=None)], address=HOME))
write('repeat-incidents', '4-third.xml', incident('2026-006020', '2026-06-20', [dv], address=('221 ALDER COURT,  Apt 4', 'fresno')))
write('delete-forgets-incident', '1.xml', incident('2026-000001', '2026-01-10', [dv]), delete('2026-000001'))
write('delete-forgets-incident', '2.xml', incident('2026-000002', '2026-02-10', [dv]))
write('adult-stranger-no-referral', 'incident.xml', incident('2026-000777', '2026-05-05', [dict(age=52, sex='M', relationship='Stranger')]))
write('lovers-quarrel-circumstance', 'incident.xml', incident('2026-000888', '2026-05-06', [dict(age=29, sex='F', relationship='Acquaintance', circumstance='06')], offense='13A'))
write('incident-without-number', 'incident.xml', incident(None, '2026-05-05', [dv]), incident('2026-000999', '2026-05-07', [dv]))
write('not-a-submission', 'incident.xml', '', head=HEAD.replace('http://fbi.gov/cjis/nibrs/2019', 'http://example.org/other'))
