#!/usr/bin/env bash
# Build the seed corpora under fuzz/corpus/<target>/ from the shipped fixtures (conformance/, examples/,
# mappings/, config/) and, when present, the small files of ../shared/data. Corpora are not committed: this
# script is the seeds list. Multi-file exports are joined with the 0x1C byte in the order fuzz/src/lib.rs reads.
set -euo pipefail
cd "$(dirname "$0")/.."
out=fuzz/corpus
shared=../shared/data
max_size=$((256 * 1024))
mkdir -p "$out"

n=0
# seed TARGET FILE: copy one file as a seed.
seed() {
  local target=$1 file=$2
  [ -f "$file" ] || return 0
  [ "$(stat -c %s "$file")" -le "$max_size" ] || return 0
  mkdir -p "$out/$target"
  n=$((n + 1))
  install -m 644 "$file" "$out/$target/seed-$n-$(basename "$file")"
}

# joined TARGET DIR NAME...: the files of DIR named NAME..., in that order, joined with 0x1C.
joined() {
  local target=$1 dir=$2
  shift 2
  [ -d "$dir" ] || return 0
  mkdir -p "$out/$target"
  n=$((n + 1))
  local dest="$out/$target/seed-$n-$(basename "$(dirname "$dir")")-$(basename "$dir")"
  : >"$dest"
  local first=1 name
  for name in "$@"; do
    [ $first -eq 1 ] || printf '\034' >>"$dest"
    first=0
    if [ -f "$dir/$name" ]; then cat "$dir/$name" >>"$dest"; fi
  done
  if [ "$(stat -c %s "$dest")" -gt "$max_size" ]; then rm "$dest"; fi
}

# joined_all TARGET DIR EXT: every *.EXT of DIR, sorted, joined with 0x1C.
joined_all() {
  local target=$1 dir=$2 ext=$3
  local names=()
  while IFS= read -r f; do names+=("$(basename "$f")"); done < <(find "$dir" -maxdepth 1 -name "*.$ext" -size -256k | sort)
  if [ ${#names[@]} -gt 0 ]; then joined "$target" "$dir" "${names[@]}"; fi
}

oneroster=(users.csv demographics.csv orgs.csv roles.csv enrollments.csv manifest.csv)
hmis=(Client.csv Enrollment.csv Exit.csv Services.csv Event.csv Project.csv Organization.csv Export.csv)
hsds=(organizations.csv services.csv locations.csv service_at_location.csv service_areas.csv addresses.csv
  phones.csv attributes.csv taxonomy_terms.csv taxonomies.csv)
edfi=(Student.xml Contact.xml EducationOrganization.xml StudentProgram.xml StudentHealth.xml)

for d in conformance/oneroster/*/*/input examples/district-export conformance/referral-csv/*/roster \
  "$shared"/sis/oneroster/*/; do
  joined oneroster_csv "${d%/}" "${oneroster[@]}"
done
seed oneroster_csv conformance/oneroster/oneroster/quirky-zip-export/export.zip
for d in conformance/hmis/*/*/input "$shared"/agency/hmis/*/; do joined hmis_csv "${d%/}" "${hmis[@]}"; done
for d in conformance/hsds/*/*/input "$shared"/directory/hsds/examples/csv/; do
  if [ -n "$(find "$d" -maxdepth 1 -name '*.csv' 2>/dev/null)" ]; then joined hsds_csv "${d%/}" "${hsds[@]}"; fi
done
for f in conformance/hsds/*/*/input/*.json "$shared"/directory/hsds/examples/*.json; do seed hsds_json "$f"; done
for f in examples/referrals.csv conformance/referral-csv/*/*/referrals.csv; do seed referral_csv "$f"; done
for d in conformance/edfi/*/*/input "$shared"/sis/edfi/samples/; do
  if [ -n "$(find "$d" -maxdepth 1 -name '*.xml' 2>/dev/null)" ]; then joined edfi_xml "${d%/}" "${edfi[@]}"; fi
done
for f in "$shared"/sis/edfi/samples/*.xml; do
  # A single interchange file as Student.xml or, for the others, in its own place in the list.
  base=$(basename "$f")
  case " ${edfi[*]} " in *" $base "*) ;; *) continue ;; esac
  tmp=$(mktemp -d)
  cp "$f" "$tmp/"
  joined edfi_xml "$tmp" "${edfi[@]}"
  rm -rf "$tmp"
done
for d in conformance/sif/*/*/input "$shared"/sis/sif-au/; do joined_all sif_xml "${d%/}" xml; done
for f in "$shared"/sis/sif-au/*.xml; do seed sif_xml "$f"; done
for d in conformance/niem/*/*/input; do joined_all nibrs_xml "$d" xml; done
for f in "$shared"/agency/niem-nibrs/*.xml; do seed nibrs_xml "$f"; done
for f in conformance/fhir/*/*/*.json conformance/fhir/*/*/*.ndjson conformance/consent/*/*.json \
  conformance/consent/*/consents/*.json examples/consents/*.json "$shared"/fhir/sdoh-examples/*.json; do
  if [ "$(basename "$f")" = expected.json ]; then continue; fi
  seed fhir_json "$f"
  seed http_json "$f"
done
for f in mappings/*/*.toml; do seed mapping_toml "$f"; done
# fhirpath: every invariant expression of src/validation/invariants.rs, one seed each.
mkdir -p "$out/fhirpath"
grep -E '^\s+"[a-z(%].*\(.*",?$' src/validation/invariants.rs | sed -E 's/^\s+"//; s/",?$//; s/\\"/"/g' |
  while IFS= read -r expression; do
    n=$((n + 1))
    printf '%s' "$expression" >"$out/fhirpath/seed-$n-invariant"
  done
for f in config/*.toml; do seed config_toml "$f"; done

for target in "$out"/*/; do
  printf '%-14s %4d seeds\n' "$(basename "$target")" "$(find "$target" -type f | wc -l)"
done
