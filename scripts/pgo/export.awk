# A district's OneRoster 1.2 CSV export and a student-support referral CSV of `n` students, for the PGO
# training workload (train.sh): twenty schools, a hundred counsellors, one or two guardians for most
# students, demographics for every student, and one referral each, the values varied the ways real exports
# vary them (dates in three forms, empty optional fields, quoted text with commas).
# Usage: awk -v n=4000 -v dir=ROSTER_FOLDER -v referrals=REFERRALS_CSV -f export.awk /dev/null
BEGIN {
    split("Ava Ben Chloe Diego Emma Farah Gabriel Hana Ivan Jada Kofi Lena Mateo Nia Omar Priya Quinn Rosa Sami Tariq", given, " ")
    split("Martinez Okafor Nguyen Patel Rossi Chen Garcia Johnson Kim Silva Haddad Novak", family, " ")
    split("food-insecurity housing-instability transportation mental-health substance-use digital-access utility-insecurity other", needs, " ")
    split("routine urgent low high ", urgency, " ")
    split("county-food-bank family-services youth-housing transit-assist community-counseling", agencies, " ")
    split("parent guardian relative", kin, " ")
    stamp = "2026-08-15T00:00:00Z"
    orgs = dir "/orgs.csv"; users = dir "/users.csv"; roles = dir "/roles.csv"; demo = dir "/demographics.csv"
    print "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId" > orgs
    print "dist-1,active," stamp ",Training Unified School District,district,0600001," > orgs
    for (s = 1; s <= 20; s++)
        printf "sch-%d,active,%s,Training School %d,school,06000010%02d,dist-1\n", s, stamp, s, s > orgs
    print "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns" > users
    print "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId" > roles
    print "sourcedId,status,dateLastModified,birthDate,sex,americanIndianOrAlaskaNative,asian,blackOrAfricanAmerican,nativeHawaiianOrOtherPacificIslander,white,demographicRaceTwoOrMoreRaces,hispanicOrLatinoEthnicity,countryOfBirthCode,stateOfBirthAbbreviation,cityOfBirth,publicSchoolResidenceStatus" > demo
    print "referral_id,student_id,need_category,urgency,referred_on,referring_staff_id,referring_staff_name,target_agency,target_service,reason,notes,consent_reference" > referrals
    for (t = 1; t <= 100; t++) {
        printf "stf-%d,active,%s,true,staff.%d,,%s,%s,,T%d,staff.%d@training.example,,555010%04d,,,,,,,,sch-%d,\n", t, stamp, t, given[t % 20 + 1], family[t % 12 + 1], t, t, t, t % 20 + 1 > users
        printf "rol-t%d,active,%s,stf-%d,primary,counselor,,,sch-%d,\n", t, stamp, t, t % 20 + 1 > roles
    }
    for (i = 1; i <= n; i++) student(i)
}

function student(i,    school, first, last, agents, k, guardians, sex, when, staff) {
    school = "sch-" (i % 20 + 1)
    first = given[i % 20 + 1]; last = family[int(i / 20) % 12 + 1]
    guardians = i % 3
    agents = ""
    for (k = 1; k <= guardians; k++) agents = agents (k > 1 ? "," : "") "par-" i "-" k
    if (guardians > 1) agents = "\"" agents "\""
    printf "stu-%d,active,%s,true,stu%d,,%s,%s,%s,S%d,%s,,,%s,%02d,,,%s,,,%s,%s\n", i, stamp, i, first, last, \
        (i % 4 == 0 ? "Lucia" : ""), i, (i % 5 == 0 ? "stu" i "@students.training.example" : ""), agents, \
        i % 12 + 1, (i % 7 == 0 ? substr(first, 1, 2) : ""), school, (i % 6 == 0 ? "she/her" : "") > users
    printf "rol-s%d,active,%s,stu-%d,primary,student,2026-08-20,2027-06-10,%s,\n", i, stamp, i, school > roles
    for (k = 1; k <= guardians; k++) {
        printf "par-%d-%d,active,%s,false,,,%s,%s,,,%s,%s,,stu-%d,,,,,,,,\n", i, k, stamp, given[(i + k) % 20 + 1], last, \
            (k == 1 ? "par" i "@example.com" : ""), (k == 2 ? "555020" sprintf("%04d", i % 10000) : ""), i > users
        printf "rol-p%d-%d,active,%s,par-%d-%d,primary,%s,,,%s,\n", i, k, stamp, i, k, kin[(i + k) % 3 + 1], school > roles
    }
    sex = (i % 2 ? "female" : "male")
    printf "stu-%d,active,%s,%d-%02d-%02d,%s,false,%s,false,false,%s,false,%s,US,CA,Riverside,\n", i, stamp, \
        2008 + i % 10, i % 12 + 1, i % 28 + 1, sex, (i % 3 == 0 ? "true" : "false"), (i % 3 == 0 ? "false" : "true"), \
        (i % 4 == 0 ? "true" : "false") > demo
    when = (i % 3 == 0 ? sprintf("%d/%d/2026", i % 12 + 1, i % 28 + 1) : (i % 3 == 1 ? sprintf("2026-%02d-%02d", i % 12 + 1, i % 28 + 1) : sprintf("2026-%02d-%02dT10:30:00-07:00", i % 12 + 1, i % 28 + 1)))
    staff = i % 100 + 1
    printf "REF-%d,stu-%d,%s,%s,%s,stf-%d,%s %s,%s,%s,%s,%s,%s\n", i, i, needs[i % 8 + 1], urgency[i % 5 + 1], when, \
        staff, given[staff % 20 + 1], family[staff % 12 + 1], agencies[i % 5 + 1], (i % 2 ? "Support program" : ""), \
        (i % 4 == 0 ? "\"Reports skipping meals, and missing school\"" : "Referred by the school counsellor"), \
        (i % 5 == 0 ? "Family prefers contact in Spanish" : ""), (i % 3 == 0 ? "" : "CONS-" i) > referrals
}
