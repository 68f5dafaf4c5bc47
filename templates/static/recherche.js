/* La recherche du catalogue dans le navigateur, sans serveur.
 *
 * The page (site/recherche/index.html) works on plain static hosting: this script
 * fetches only the shards a query needs (see catalogue/search/static.py for the
 * format) and ranks like the CLI and the API:
 *   1. number lookup: the query without blanks, uppercased (and RNCP<n> for a bare
 *      number of 6 digits at most) in the number shards; those formations first, in
 *      Ref order;
 *   2. text: the analysed terms, all required (AND); score = sum of the terms'
 *      precomputed BM25F scores, rounded to 4 significant digits; ties by Ref;
 *   3. when nothing is found while the user is still typing, the last word counts as
 *      the beginning of a word (prefix: every indexed stem starting with the stem of
 *      what was typed, best score kept); then a light spelling tolerance on stems
 *      (words of 5 letters or more, 1 edit, 2 from 8 letters, within the word's shard).
 * Archived formations are left out unless the box is ticked.
 *
 * The analysis chain is a port of catalogue/search/analysis.py (NFKC, lowercase,
 * words, accent folding, stop words, Snowball French stemmer of whoosh); its data
 * (stop words, Unicode tables) comes from manifest.json, written from Python.
 * No framework, no eval, no inline handler: CSP-friendly.
 */
(function () {
  "use strict";

  // --------------------------------------------------------------------------
  // Python string semantics the stemmer relies on
  // --------------------------------------------------------------------------

  /** s[i] with Python's negative indexes (an IndexError is an exception here too). */
  function at(s, i) {
    if (i < 0) { i += s.length; }
    if (i < 0 || i >= s.length) { throw new RangeError("string index out of range"); }
    return s.charAt(i);
  }

  function has(set, ch) { return ch.length === 1 && set.indexOf(ch) >= 0; }

  // --------------------------------------------------------------------------
  // Snowball French stemmer: whoosh.lang.snowball.french.FrenchStemmer, line by line
  // --------------------------------------------------------------------------

  var VOWELS = "aeiouy\u00E2\u00E0\u00EB\u00E9\u00EA\u00E8\u00EF\u00EE\u00F4\u00FB\u00F9";
  var STEP1 = ["issements", "issement", "atrices", "atrice", "ateurs", "ations", "logies",
    "usions", "utions", "ements", "amment", "emment", "ances", "iqUes", "ismes", "ables",
    "istes", "ateur", "ation", "logie", "usion", "ution", "ences", "ement", "euses", "ments",
    "ance", "iqUe", "isme", "able", "iste", "ence", "it\u00E9s", "ives", "eaux", "euse",
    "ment", "eux", "it\u00E9", "ive", "ifs", "aux", "if"];
  var STEP2A = ["issaIent", "issantes", "iraIent", "issante", "issants", "issions", "irions",
    "issais", "issait", "issant", "issent", "issiez", "issons", "irais", "irait", "irent",
    "iriez", "irons", "iront", "isses", "issez", "\u00EEmes", "\u00EEtes", "irai", "iras",
    "irez", "isse", "ies", "ira", "\u00EEt", "ie", "ir", "is", "it", "i"];
  var STEP2B = ["eraIent", "assions", "erions", "assent", "assiez", "\u00E8rent", "erais",
    "erait", "eriez", "erons", "eront", "aIent", "antes", "asses", "ions", "erai", "eras",
    "erez", "\u00E2mes", "\u00E2tes", "ante", "ants", "asse", "\u00E9es", "era", "iez", "ais",
    "ait", "ant", "\u00E9e", "\u00E9s", "er", "ez", "\u00E2t", "ai", "as", "\u00E9", "a"];
  var STEP2B_DELETE = ["eraIent", "erions", "\u00E8rent", "erais", "erait", "eriez", "erons",
    "eront", "erai", "eras", "erez", "\u00E9es", "era", "iez", "\u00E9e", "\u00E9s", "er", "ez",
    "\u00E9"];
  var STEP2B_DELETE_E = ["assions", "assent", "assiez", "aIent", "antes", "asses", "\u00E2mes",
    "\u00E2tes", "ante", "ants", "asse", "ais", "ait", "ant", "\u00E2t", "ai", "as", "a"];
  var STEP4 = ["i\u00E8re", "I\u00E8re", "ion", "ier", "Ier", "e", "\u00EB"];

  function contains(list, s) { return list.indexOf(s) >= 0; }

  function r1r2(word) {
    var r1 = "", r2 = "", i;
    for (i = 1; i < word.length; i++) {
      if (!has(VOWELS, word[i]) && has(VOWELS, word[i - 1])) { r1 = word.slice(i + 1); break; }
    }
    for (i = 1; i < r1.length; i++) {
      if (!has(VOWELS, r1[i]) && has(VOWELS, r1[i - 1])) { r2 = r1.slice(i + 1); break; }
    }
    return [r1, r2];
  }

  function rvFrench(word) {
    var rv = "";
    if (word.length >= 2) {
      if (/^(par|col|tap)/.test(word) || (has(VOWELS, word[0]) && has(VOWELS, word[1]))) {
        rv = word.slice(3);
      } else {
        for (var i = 1; i < word.length; i++) {
          if (has(VOWELS, word[i])) { rv = word.slice(i + 1); break; }
        }
      }
    }
    return rv;
  }

  function cut(word, n) { return word.slice(0, word.length - n); }

  function stemWord(input) {
    var word = input.toLowerCase();
    var step1 = false, rvEnding = false, step2a = false, step2b = false;
    var chars = word.split(""), i;
    for (i = 1; i < chars.length; i++) {
      if (chars[i - 1] === "q" && chars[i] === "u") { chars[i] = "U"; }
    }
    for (i = 1; i < chars.length - 1; i++) {
      if (has(VOWELS, chars[i - 1]) && has(VOWELS, chars[i + 1])) {
        if (chars[i] === "u") { chars[i] = "U"; } else if (chars[i] === "i") { chars[i] = "I"; }
      }
      if (has(VOWELS, chars[i - 1]) || has(VOWELS, chars[i + 1])) {
        if (chars[i] === "y") { chars[i] = "Y"; }
      }
    }
    word = chars.join("");
    var regions = r1r2(word), r1 = regions[0], r2 = regions[1];
    var rv = rvFrench(word);
    var suffix, k;

    // STEP 1: standard suffix removal
    for (k = 0; k < STEP1.length; k++) {
      suffix = STEP1[k];
      if (!word.endsWith(suffix)) { continue; }
      if (suffix === "eaux") {
        word = word.slice(0, -1);
        step1 = true;
      } else if (suffix === "euse" || suffix === "euses") {
        if (r2.indexOf(suffix) >= 0) {
          word = cut(word, suffix.length);
          step1 = true;
        } else if (r1.indexOf(suffix) >= 0) {
          word = cut(word, suffix.length) + "eux";
          step1 = true;
        }
      } else if ((suffix === "ement" || suffix === "ements") && rv.indexOf(suffix) >= 0) {
        word = cut(word, suffix.length);
        step1 = true;
        if (word.slice(-2) === "iv" && r2.indexOf("iv") >= 0) {
          word = word.slice(0, -2);
          if (word.slice(-2) === "at" && r2.indexOf("at") >= 0) { word = word.slice(0, -2); }
        } else if (word.slice(-3) === "eus") {
          if (r2.indexOf("eus") >= 0) { word = word.slice(0, -3); }
          else if (r1.indexOf("eus") >= 0) { word = word.slice(0, -1) + "x"; }
        } else if (word.slice(-3) === "abl" || word.slice(-3) === "iqU") {
          if (r2.indexOf("abl") >= 0 || r2.indexOf("iqU") >= 0) { word = word.slice(0, -3); }
        } else if (word.slice(-3) === "i\u00E8r" || word.slice(-3) === "I\u00E8r") {
          if (rv.indexOf("i\u00E8r") >= 0 || rv.indexOf("I\u00E8r") >= 0) { word = word.slice(0, -3) + "i"; }
        }
      } else if (suffix === "amment" && rv.indexOf(suffix) >= 0) {
        word = word.slice(0, -6) + "ant";
        rv = rv.slice(0, -6) + "ant";
        rvEnding = true;
      } else if (suffix === "emment" && rv.indexOf(suffix) >= 0) {
        word = word.slice(0, -6) + "ent";
        rvEnding = true;
      } else if ((suffix === "ment" || suffix === "ments") && rv.indexOf(suffix) >= 0 &&
                 !rv.startsWith(suffix) && has(VOWELS, at(rv, rv.lastIndexOf(suffix) - 1))) {
        word = cut(word, suffix.length);
        rv = cut(rv, suffix.length);
        rvEnding = true;
      } else if (suffix === "aux" && r1.indexOf(suffix) >= 0) {
        word = word.slice(0, -2) + "l";
        step1 = true;
      } else if ((suffix === "issement" || suffix === "issements") && r1.indexOf(suffix) >= 0 &&
                 !has(VOWELS, at(word, -suffix.length - 1))) {
        word = cut(word, suffix.length);
        step1 = true;
      } else if (contains(["ance", "iqUe", "isme", "able", "iste", "eux", "ances", "iqUes",
                           "ismes", "ables", "istes"], suffix) && r2.indexOf(suffix) >= 0) {
        word = cut(word, suffix.length);
        step1 = true;
      } else if (contains(["atrice", "ateur", "ation", "atrices", "ateurs", "ations"], suffix) &&
                 r2.indexOf(suffix) >= 0) {
        word = cut(word, suffix.length);
        step1 = true;
        if (word.slice(-2) === "ic") {
          word = r2.indexOf("ic") >= 0 ? word.slice(0, -2) : word.slice(0, -2) + "iqU";
        }
      } else if ((suffix === "logie" || suffix === "logies") && r2.indexOf(suffix) >= 0) {
        word = cut(word, suffix.length) + "log";
        step1 = true;
      } else if (contains(["usion", "ution", "usions", "utions"], suffix) && r2.indexOf(suffix) >= 0) {
        word = cut(word, suffix.length) + "u";
        step1 = true;
      } else if ((suffix === "ence" || suffix === "ences") && r2.indexOf(suffix) >= 0) {
        word = cut(word, suffix.length) + "ent";
        step1 = true;
      } else if ((suffix === "it\u00E9" || suffix === "it\u00E9s") && r2.indexOf(suffix) >= 0) {
        word = cut(word, suffix.length);
        step1 = true;
        if (word.slice(-4) === "abil") {
          word = r2.indexOf("abil") >= 0 ? word.slice(0, -4) : word.slice(0, -2) + "l";
        } else if (word.slice(-2) === "ic") {
          word = r2.indexOf("ic") >= 0 ? word.slice(0, -2) : word.slice(0, -2) + "iqU";
        } else if (word.slice(-2) === "iv") {
          if (r2.indexOf("iv") >= 0) { word = word.slice(0, -2); }
        }
      } else if (contains(["if", "ive", "ifs", "ives"], suffix) && r2.indexOf(suffix) >= 0) {
        word = cut(word, suffix.length);
        step1 = true;
        if (word.slice(-2) === "at" && r2.indexOf("at") >= 0) {
          word = word.slice(0, -2);
          if (word.slice(-2) === "ic") {
            word = r2.indexOf("ic") >= 0 ? word.slice(0, -2) : word.slice(0, -2) + "iqU";
          }
        }
      }
      break;
    }

    // STEP 2a: verb suffixes beginning with i; STEP 2b: other verb suffixes
    if (!step1 || rvEnding) {
      for (k = 0; k < STEP2A.length; k++) {
        suffix = STEP2A[k];
        if (word.endsWith(suffix)) {
          if (rv.indexOf(suffix) >= 0 && rv.length > suffix.length &&
              !has(VOWELS, at(rv, rv.lastIndexOf(suffix) - 1))) {
            word = cut(word, suffix.length);
            step2a = true;
          }
          break;
        }
      }
      if (!step2a) {
        for (k = 0; k < STEP2B.length; k++) {
          suffix = STEP2B[k];
          if (!rv.endsWith(suffix)) { continue; }
          if (suffix === "ions" && r2.indexOf("ions") >= 0) {
            word = word.slice(0, -4);
            step2b = true;
          } else if (contains(STEP2B_DELETE, suffix)) {
            word = cut(word, suffix.length);
            step2b = true;
          } else if (contains(STEP2B_DELETE_E, suffix)) {
            word = cut(word, suffix.length);
            rv = cut(rv, suffix.length);
            step2b = true;
            if (rv.endsWith("e")) { word = word.slice(0, -1); }
          }
          break;
        }
      }
    }

    // STEP 3, or STEP 4: residual suffixes
    if (step1 || step2a || step2b) {
      if (at(word, -1) === "Y") { word = word.slice(0, -1) + "i"; }
      else if (at(word, -1) === "\u00E7") { word = word.slice(0, -1) + "c"; }
    } else {
      if (word.length >= 2 && at(word, -1) === "s" && !has("aiou\u00E8s", at(word, -2))) {
        word = word.slice(0, -1);
      }
      for (k = 0; k < STEP4.length; k++) {
        suffix = STEP4[k];
        if (word.endsWith(suffix) && rv.indexOf(suffix) >= 0) {
          if (suffix === "ion" && r2.indexOf(suffix) >= 0 && has("st", at(rv, -4))) {
            word = word.slice(0, -3);
          } else if (contains(["ier", "i\u00E8re", "Ier", "I\u00E8re"], suffix)) {
            word = cut(word, suffix.length) + "i";
          } else if (suffix === "e") {
            word = word.slice(0, -1);
          } else if (suffix === "\u00EB" && word.slice(-3, -1) === "gu") {
            word = word.slice(0, -1);
          }
          break;
        }
      }
    }

    // STEP 5: undouble
    if (/(enn|onn|ett|ell|eill)$/.test(word)) { word = word.slice(0, -1); }

    // STEP 6: un-accent
    for (i = 1; i < word.length; i++) {
      if (has(VOWELS, at(word, -i))) {
        if (i !== 1 && (at(word, -i) === "\u00E9" || at(word, -i) === "\u00E8")) {
          word = word.slice(0, word.length - i) + "e" + word.slice(word.length - i + 1);
        }
        break;
      }
    }
    return word.replace(/I/g, "i").replace(/U/g, "u").replace(/Y/g, "y");
  }

  /** The stemmer counts characters as Python does (code points): astral ones get a stand-in. */
  function snowball(word) {
    if (!/[\uD800-\uDFFF]/.test(word)) { return stemWord(word); }
    var astral = [], stand = 0xE000;
    while (word.indexOf(String.fromCharCode(stand)) >= 0) { stand++; }
    var standIn = String.fromCharCode(stand);
    var flat = Array.from(word).map(function (c) {
      if (c.length > 1) { astral.push(c); return standIn; }
      return c;
    }).join("");
    var n = 0;
    // Only suffixes are removed, so the stand-ins left are the first ones, in order.
    return stemWord(flat).split(standIn).reduce(function (acc, part) {
      return acc + astral[n++] + part;
    });
  }

  // --------------------------------------------------------------------------
  // The analysis chain (catalogue/search/analysis.py)
  // --------------------------------------------------------------------------

  var WORD = /[\p{L}\p{N}]+/gu;
  var LIGATURES = { "\u0153": "oe", "\u00E6": "ae", "\u00DF": "ss", "\u00F8": "o", "\u0111": "d", "\u0142": "l", "\u0131": "i" };
  var LIGATURE_RE = /[\u0153\u00E6\u00DF\u00F8\u0111\u0142\u0131]/g;
  // str.split()'s blanks, for normalise_number
  var BLANKS = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/g;

  function inRanges(ranges, cp) {
    var lo = 0, hi = ranges.length / 2 - 1;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (cp < ranges[2 * mid]) { hi = mid - 1; }
      else if (cp > ranges[2 * mid + 1]) { lo = mid + 1; }
      else { return true; }
    }
    return false;
  }

  function length(s) { return Array.from(s).length; }

  /** The analysis chain, made from the manifest's data (stop words, Unicode tables). */
  function Analysis(manifest) {
    var stop = new Set(manifest.stop);
    var combining = manifest.unicode.combining;
    var digit = manifest.unicode.digit;

    function words(text) {
      return text.normalize("NFKC").toLowerCase().match(WORD) || [];
    }
    function fold(word) {
      word = word.replace(LIGATURE_RE, function (c) { return LIGATURES[c]; });
      if (/^[\x00-\x7f]*$/.test(word)) { return word; }
      return Array.from(word.normalize("NFKD")).filter(function (c) {
        return !inRanges(combining, c.codePointAt(0));
      }).join("");
    }
    function isDigits(word) {
      return word.length > 0 && Array.from(word).every(function (c) { return inRanges(digit, c.codePointAt(0)); });
    }
    function stem(folded) { return isDigits(folded) ? folded : snowball(folded); }
    function foldTerms(text) {
      var result = [];
      words(text || "").forEach(function (w) {
        var folded = fold(w);
        if (!stop.has(folded) && length(folded) >= 2) { result.push(folded); }
      });
      return result;
    }
    function analyse(text) {
      var result = [];
      foldTerms(text).forEach(function (folded) {
        var term = stem(folded);
        if (length(term) >= 2) { result.push(term); }
      });
      return result;
    }
    return { words: words, fold: fold, stem: stem, foldTerms: foldTerms, analyse: analyse, stop: stop };
  }

  // Same as analysis.normalise_number: "Ref : 15_AF_1" pasted from a fiche is the Ref.
  var REF_LABEL = /^R[EÉ]F(?:[EÉ]RENCE)?:/;
  function normaliseNumber(query) { return query.replace(BLANKS, "").toUpperCase().replace(REF_LABEL, ""); }

  /** analysis.round_score: 4 significant digits. */
  function roundScore(score) {
    if (score === 0 || !isFinite(score)) { return score; }
    var digits = 3 - Math.floor(Math.log10(Math.abs(score)));
    if (digits >= 0) { return Number(score.toFixed(Math.min(digits, 100))); }
    var unit = Math.pow(10, -digits);
    return Math.round(score / unit) * unit;
  }

  // --------------------------------------------------------------------------
  // Shards
  // --------------------------------------------------------------------------

  var CRC_TABLE = (function () {
    var table = [], c, n, k;
    for (n = 0; n < 256; n++) {
      c = n;
      for (k = 0; k < 8; k++) { c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1; }
      table.push(c >>> 0);
    }
    return table;
  }());

  function crc32(text) {
    var bytes = new TextEncoder().encode(text), crc = 0xFFFFFFFF;
    for (var i = 0; i < bytes.length; i++) { crc = CRC_TABLE[(crc ^ bytes[i]) & 0xFF] ^ (crc >>> 8); }
    return (crc ^ 0xFFFFFFFF) >>> 0;
  }

  /** static.canonical: after the last "_" of what comes before the first "|". */
  function canonical(key) {
    var head = key.split("|")[0];
    return head.slice(head.lastIndexOf("_") + 1);
  }

  function leafOf(term, split) {
    var chars = Array.from(term), n = 1, prefix = chars.slice(0, 1).join("");
    while (split.has(prefix)) {
      if (n === chars.length) { return prefix + "_"; }
      n++;
      prefix = chars.slice(0, n).join("");
    }
    return prefix;
  }

  function leafFile(leaf) {
    var exact = leaf.endsWith("_"), prefix = exact ? leaf.slice(0, -1) : leaf;
    var name = /^[a-z0-9]+$/.test(prefix) ? prefix : "-" + Array.from(new TextEncoder().encode(prefix), function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
    return name + (exact ? "_" : "");
  }

  function pageFile(term, page) {
    return ("0000000" + crc32(term).toString(16)).slice(-8) + "-" + page;
  }

  var KEY_RE = /^[A-Z0-9_.\-|]+$/;
  /** Pages beyond the first a text query may fetch to make sure of its first results. */
  var MAX_EXTRA_PAGES = 4;
  /** Results shown at a time. */
  var PAGE_SIZE = 10;
  var MAX_NUMBER_CHARS = 250;

  function Shards(config) {
    var cache = new Map();
    var self = {
      config: config,
      fetched: [],
      load: function (path) {
        if (!cache.has(path)) {
          self.fetched.push(path);
          cache.set(path, fetch(config.base + path + "?v=" + encodeURIComponent(config.version), {
            credentials: "same-origin"
          }).then(function (response) {
            // A shard that does not exist (no key, no term there): 404, or 403 on some object stores.
            if (response.status === 404 || response.status === 403) { return null; }
            if (!response.ok) { throw new Error("HTTP " + response.status + " : " + path); }
            return response.json();
          }));
        }
        return cache.get(path);
      },
      manifest: function () { return self.load("manifest.json"); },
      analysis: function () {
        if (!self._analysis) {
          self._analysis = self.manifest().then(function (m) {
            self.split = new Set(m.split);
            self.maxTerms = m.maxTerms;
            self.pageSizes = m.topK;
            return Analysis(m);
          });
        }
        return self._analysis;
      },
      numberShard: function (key) {
        return self.load("n/" + (crc32(canonical(key)) % config.numeros).toString(16) + ".json");
      },
      termShard: function (term) {
        return self.load("t/" + leafFile(leafOf(term, self.split)) + ".json");
      },
      row: function (docnum, rows) {
        var key = String(docnum);
        if (rows && Object.prototype.hasOwnProperty.call(rows, key)) { return Promise.resolve(rows[key]); }
        return self.load("d/" + Math.floor(docnum / config.docs) + ".json").then(function (shard) {
          return shard[docnum % config.docs];
        });
      }
    };
    return self;
  }

  /** [[score, code, +delta...], ...] → Map(code → score) (a leading {p, c} head is skipped). */
  function postings(groups, map) {
    map = map || new Map();
    (groups || []).forEach(function (group) {
      if (!Array.isArray(group)) { return; }
      var score = group[0], code = group[1];
      map.set(code, score);
      for (var i = 2; i < group.length; i++) { code += group[i]; map.set(code, score); }
    });
    return map;
  }

  /** The pages of one term's postings fetched so far (static.py's _TermList). */
  function TermList(term, entry, sizes) {
    var head = entry && entry.length && !Array.isArray(entry[0]) ? entry[0] : {};
    var self = {
      term: term, scores: new Map(), seen: [0, 0], least: [Infinity, Infinity],
      pages: head.p || 1, cut: !!head.c, fetched: 0, members: null,
      add: function (groups) {
        self.fetched++;
        postings(groups).forEach(function (score, code) {
          self.scores.set(code, score);
          self.seen[code & 1]++;
          self.least[code & 1] = Math.min(self.least[code & 1], score);
        });
      },
      /** The best score a formation not fetched yet may have (-Infinity: none left). */
      bound: function (includeArchived) {
        if (self.fetched >= self.pages && !self.cut) { return -Infinity; }
        var best = -Infinity;
        (includeArchived ? [0, 1] : [0]).forEach(function (a) {
          var b = self.seen[a] < self.fetched * sizes[a] ? -Infinity : self.least[a];
          best = Math.max(best, b);
        });
        return best;
      }
    };
    self.add(entry || []);
    return self;
  }

  var SET_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

  /** static.decode_set: "d" + base-32 varint gaps, or "b" + a bitmap of 6 docnums per character. */
  function decodeSet(text) {
    var result = [], i, v;
    if (text[0] === "b") {
      for (i = 1; i < text.length; i++) {
        v = SET_DIGITS.indexOf(text[i]);
        for (var bit = 0; bit < 6; bit++) { if ((v >> bit) & 1) { result.push((i - 1) * 6 + bit); } }
      }
      return result;
    }
    var previous = -1, gap = 0, unit = 1;
    for (i = 1; i < text.length; i++) {
      v = SET_DIGITS.indexOf(text[i]);
      gap += (v & 31) * unit;
      if (v & 32) { unit *= 32; continue; }
      previous += gap;
      result.push(previous);
      gap = 0;
      unit = 1;
    }
    return result;
  }

  /** Every formation holding all terms; a score not fetched counts as its page bound. */
  function estimate(lists, includeArchived) {
    var sets = lists.map(function (t) { return t.members || new Set(t.scores.keys()); });
    var bounds = lists.map(function (t) { return t.bound(includeArchived); });
    var smallest = sets.reduce(function (a, b) { return b.size < a.size ? b : a; });
    var hits = [];
    smallest.forEach(function (code) {
      if ((code & 1) && !includeArchived) { return; }
      var sum = 0;
      for (var i = 0; i < lists.length; i++) {
        if (!sets[i].has(code)) { return; }
        var score = lists[i].scores.get(code);
        sum += score === undefined ? bounds[i] : score;
      }
      hits.push([code >> 1, roundScore(sum)]);
    });
    hits.sort(function (a, b) { return b[1] - a[1] || a[0] - b[0]; });
    return hits;
  }

  /** Whether no formation outside the pages fetched can enter the first `need` hits. */
  function certified(lists, hits, need, includeArchived) {
    var bounds = lists.map(function (t) { return t.bound(includeArchived); });
    var best = bounds.every(function (b) { return b !== -Infinity; })
      ? bounds.reduce(function (a, b) { return a + b; }, 0) : -Infinity;
    var found = new Set(hits.map(function (h) { return h[0]; }));
    var codes = new Set();
    lists.forEach(function (t) { t.scores.forEach(function (unused, code) { codes.add(code); }); });
    codes.forEach(function (code) {
      if (((code & 1) && !includeArchived) || found.has(code >> 1)) { return; }
      var total = 0;
      for (var i = 0; i < lists.length; i++) {
        var score = lists[i].scores.get(code);
        if (score === undefined) {
          if (bounds[i] === -Infinity) { return; }
          score = bounds[i];
        }
        total += score;
      }
      best = Math.max(best, total);
    });
    if (best === -Infinity) { return true; }
    if (hits.length < need) { return false; }
    var nth = hits[need - 1][1];
    // One term: formations not fetched that tie come after by Ref (pages are in docnum order).
    return lists.length === 1 ? roundScore(best) <= nth : roundScore(best) < nth;
  }

  function unique(items) { return Array.from(new Set(items)); }

  function editDistance(a, b, max) {
    a = Array.from(a); b = Array.from(b);
    if (Math.abs(a.length - b.length) > max) { return max + 1; }
    var prev = [], cur, i, j;
    for (j = 0; j <= b.length; j++) { prev.push(j); }
    for (i = 1; i <= a.length; i++) {
      cur = [i];
      var best = i;
      for (j = 1; j <= b.length; j++) {
        cur.push(Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)));
        best = Math.min(best, cur[j]);
      }
      if (best > max) { return max + 1; }
      prev = cur;
    }
    return prev[b.length];
  }

  // --------------------------------------------------------------------------
  // The search
  // --------------------------------------------------------------------------

  function numberCandidates(query) {
    var number = normaliseNumber(query);
    if (!number || length(number) > MAX_NUMBER_CHARS) { return []; }
    var candidates = [number];
    if (/^[0-9]{1,6}$/.test(number)) { candidates.push("RNCP" + number); }
    return candidates;
  }

  /** Formations found by number: {docs: sorted docnums, rows, texted}. */
  function lookupNumbers(shards, query, includeArchived) {
    var config = shards.config;
    var candidates = numberCandidates(query).filter(function (key) {
      return KEY_RE.test(key) && (config.alpha || /[0-9]/.test(key));
    });
    var found = { docs: [], rows: {}, texted: false };
    var docs = new Set();
    return Promise.all(candidates.map(function (key, i) {
      return shards.numberShard(key).then(function (shard) {
        if (!shard) { return null; }
        if (i === 0 && shard.t.indexOf(key) >= 0) { found.texted = true; }
        Object.assign(found.rows, shard.r);
        var codes = Object.prototype.hasOwnProperty.call(shard.k, key) ? shard.k[key] : [];
        if (typeof codes === "string") {
          return shards.load("n/" + codes + ".json").then(function (big) { return big.c; });
        }
        return codes;
      }).then(function (codes) {
        (codes || []).forEach(function (code) {
          if (includeArchived || !(code & 1)) { docs.add(code >> 1); }
        });
      });
    })).then(function () {
      found.docs = Array.from(docs).sort(function (a, b) { return a - b; });
      return found;
    });
  }

  /** AND of the word alternatives: each word is a list of Maps (code → score), best kept. */
  function intersect(words, includeArchived) {
    var merged = words.map(function (alternatives) {
      if (alternatives.length === 1) { return alternatives[0]; }
      var best = new Map();
      alternatives.forEach(function (map) {
        map.forEach(function (score, code) {
          if (!best.has(code) || best.get(code) < score) { best.set(code, score); }
        });
      });
      return best;
    });
    if (!merged.length) { return []; }
    var smallest = merged.reduce(function (a, b) { return b.size < a.size ? b : a; });
    var hits = [];
    smallest.forEach(function (unused, code) {
      if ((code & 1) && !includeArchived) { return; }
      var sum = 0;
      for (var i = 0; i < merged.length; i++) {
        if (!merged[i].has(code)) { return; }
        sum += merged[i].get(code);
      }
      hits.push([code >> 1, roundScore(sum)]);
    });
    hits.sort(function (a, b) { return b[1] - a[1] || a[0] - b[0]; });
    return hits;
  }

  /** Text hits [[docnum, score]], and how they were found ("exact", "prefix", "fuzzy"). */
  function textSearch(shards, query, options) {
    return shards.analysis().then(function (analysis) {
      var words = analysis.analyse(query), terms = unique(words);
      if (!terms.length) { return { hits: [], mode: "exact" }; }
      if (words.length > shards.maxTerms) {
        return { hits: [], mode: "exact", error: "Requête trop longue : " + shards.maxTerms + " mots au plus." };
      }
      return Promise.all(terms.map(function (t) { return shards.termShard(t); })).then(function (loaded) {
        var lists = terms.map(function (term, i) { return TermList(term, loaded[i] && loaded[i][term], shards.pageSizes); });
        return certify(shards, lists, options, 0).then(function (hits) {
          // Without every term's members, a term's list may still hide some formations.
          var partial = lists.some(function (t) { return !t.members && t.bound(options.includeArchived) !== -Infinity; });
          if (hits.length || options.hasNumbers) { return { hits: hits, mode: "exact", partial: partial }; }
          var exact = lists.map(function (t) { return t.scores; });
          return approximate(shards, analysis, query, terms, exact, options);
        });
      });
    });
  }

  /** AND of the lists; more pages while formations not fetched could still enter the first hits. */
  function certify(shards, lists, options, extra) {
    var includeArchived = options.includeArchived;
    var hits = intersect(lists.map(function (t) { return [t.scores]; }), includeArchived);
    if (certified(lists, hits, options.need, includeArchived)) { return Promise.resolve(hits); }
    var more = lists.filter(function (t) { return t.fetched < t.pages; });
    if (!more.length || extra >= MAX_EXTRA_PAGES) {
      // Not sure yet: which formations hold every term, each term's score where fetched
      // and its page bound elsewhere (an upper bound: an estimate).
      var open = lists.filter(function (t) { return t.bound(includeArchived) !== -Infinity; });
      return Promise.all(open.map(function (t) {
        // b/<crc>-0: current formations holding the term, b/<crc>-1: archived ones.
        var files = [shards.load("b/" + pageFile(t.term, 0) + ".json")];
        if (includeArchived) { files.push(shards.load("b/" + pageFile(t.term, 1) + ".json")); }
        return Promise.all(files).then(function (loaded) {
          t.members = new Set();
          loaded.forEach(function (file, archived) {
            decodeSet(file[t.term]).forEach(function (d) { t.members.add(d * 2 + archived); });
          });
        });
      })).then(function () { return estimate(lists, includeArchived); });
    }
    var best = more.reduce(function (a, b) {
      return b.bound(options.includeArchived) > a.bound(options.includeArchived) ? b : a;
    });
    return shards.load("p/" + pageFile(best.term, best.fetched) + ".json").then(function (page) {
      best.add((page && page[best.term]) || []);
      return certify(shards, lists, options, extra + 1);
    });
  }

  /** Fallbacks when the exact query finds nothing: last word as a prefix while typing, then typos. */
  function approximate(shards, analysis, query, terms, exact, options) {
    var words = analysis.words(query);
    var last = words.length ? analysis.fold(words[words.length - 1]) : "";
    // options.typing: the user is typing and the query does not end with a blank (see run()).
    var typingLast = options.typing && !analysis.stop.has(last) && length(last) >= 2;
    var prefixStep = Promise.resolve([]);
    if (typingLast) {
      var stemmed = analysis.stem(last);
      // A prefix that is itself split spans several shards: not expanded.
      if (length(stemmed) >= 2 && !leafOf(stemmed, shards.split).endsWith("_")) {
        prefixStep = shards.termShard(stemmed).then(function (shard) {
          var alternatives = Object.keys(shard || {}).filter(function (t) { return t.startsWith(stemmed); })
            .map(function (t) { return postings(shard[t]); });
          if (!alternatives.length) { return []; }
          var words = [];
          terms.forEach(function (t, i) { if (t !== stemmed) { words.push([exact[i]]); } });
          words.push(alternatives);
          return intersect(words, options.includeArchived);
        });
      }
    }
    return prefixStep.then(function (hits) {
      if (hits.length) { return { hits: hits, mode: "prefix" }; }
      return fuzzy(shards, analysis, query, options).then(function (fuzzyHits) {
        return { hits: fuzzyHits, mode: fuzzyHits.length ? "fuzzy" : "exact" };
      });
    });
  }

  function fuzzy(shards, analysis, query, options) {
    var folded = unique(analysis.foldTerms(query));
    var fuzzed = false;
    return Promise.all(folded.map(function (word) {
      var term = analysis.stem(word);
      var tolerant = length(word) >= 5 && /^\p{L}+$/u.test(word);
      fuzzed = fuzzed || tolerant;
      if (length(term) < 2) { return Promise.resolve([]); }
      return shards.termShard(term).then(function (shard) {
        shard = shard || {};
        var maxdist = length(word) >= 8 ? 2 : 1;
        return Object.keys(shard).filter(function (t) {
          if (t === term) { return true; }
          return tolerant && t[0] === term[0] && editDistance(t, term, maxdist) <= maxdist;
        }).map(function (t) { return postings(shard[t]); });
      });
    })).then(function (words) {
      if (!fuzzed || !words.length || words.some(function (w) { return !w.length; })) { return []; }
      return intersect(words, options.includeArchived);
    });
  }

  /** The whole query: numbers first (Ref order), then text (score, then Ref). */
  function search(shards, query, options) {
    query = query.trim();
    if (!query) { return Promise.resolve({ hits: [], rows: {}, mode: "exact" }); }
    // A number finds its formation even when archived, as the CLI and the API do: an old Ref still leads to its fiche.
    return lookupNumbers(shards, query, true).then(function (numbers) {
      var hits = numbers.docs.map(function (d) { return { docnum: d, score: null, match: "numero" }; });
      var skipText = numbers.docs.length && !numbers.texted && !/\s/.test(query);
      var need = (options.need || PAGE_SIZE) + numbers.docs.length;
      var text = skipText ? Promise.resolve({ hits: [], mode: "exact" })
        : textSearch(shards, query, {
          includeArchived: options.includeArchived, typing: options.typing,
          hasNumbers: numbers.docs.length > 0, need: need
        });
      return text.then(function (found) {
        var seen = new Set(numbers.docs);
        found.hits.forEach(function (hit) {
          if (!seen.has(hit[0])) { hits.push({ docnum: hit[0], score: hit[1], match: "texte" }); }
        });
        return {
          hits: hits, rows: numbers.rows, mode: found.mode, error: found.error, partial: !!found.partial,
          query: query, need: options.need || PAGE_SIZE, includeArchived: options.includeArchived
        };
      });
    });
  }

  /** Result objects with the keys of the CLI and the API. */
  function results(shards, found, start, count) {
    return Promise.all(found.hits.slice(start, start + count).map(function (hit) {
      return shards.row(hit.docnum, found.rows).then(function (row) {
        var d = row[6];
        return {
          ref: row[0], intitule: row[1], organisme: row[2], ville: row[3] || null, codepostal: row[4] || null,
          url: "/formations/" + row[0] + ".html", archived: !!row[5],
          datemaj: d.slice(6) + "/" + d.slice(4, 6) + "/" + d.slice(0, 4),
          score: hit.score, match: hit.match
        };
      });
    }));
  }

  // --------------------------------------------------------------------------
  // The page
  // --------------------------------------------------------------------------

  var DEBOUNCE_MS = 180;

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy")); }
    });
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function plural(n, one, many) { return n + " " + (n > 1 ? many : one); }

  function resultItem(result, status) {
    var item = element("li", "resultat");
    item.setAttribute("data-ref", result.ref);
    var title = element("a", null, result.intitule);
    title.href = "/formations/" + encodeURIComponent(result.ref) + ".html";
    item.appendChild(title);
    if (result.archived) {
      item.appendChild(document.createTextNode(" "));
      item.appendChild(element("span", "state state-ended", "Archivée"));
    }
    var meta = element("span", "entry-meta");
    var lieu = [result.codepostal, result.ville].filter(Boolean).join(" ");
    meta.appendChild(document.createTextNode(result.organisme + (lieu ? " — " + lieu : "") + " — Ref : "));
    meta.appendChild(element("span", "ref", result.ref));
    meta.appendChild(document.createTextNode(" — mise à jour le " + result.datemaj + " "));
    var button = element("button", "button button-small button-secondary copy-ref", "Copier la référence");
    button.type = "button";
    button.setAttribute("aria-label", "Copier la référence " + result.ref);
    button.addEventListener("click", function () {
      copyText(result.ref).then(function () {
        status.textContent = "Référence " + result.ref + " copiée.";
      }, function () {
        status.textContent = "Copie impossible : sélectionnez la référence " + result.ref + " et faites Ctrl+C.";
      });
    });
    meta.appendChild(button);
    item.appendChild(meta);
    return item;
  }

  function start(form) {
    var config = {
      base: form.getAttribute("data-base"),
      version: form.getAttribute("data-version"),
      numeros: Number(form.getAttribute("data-numeros")),
      docs: Number(form.getAttribute("data-docs")),
      alpha: form.getAttribute("data-alpha") === "1"
    };
    var shards = Shards(config);
    var input = form.querySelector("input[name=q]");
    var archives = form.querySelector("input[name=archives]");
    var statusNode = document.getElementById("recherche-statut");
    var list = document.getElementById("recherche-resultats");
    var more = document.getElementById("recherche-plus");
    var copyStatus = element("p", "copy-status");
    copyStatus.setAttribute("role", "status");
    copyStatus.setAttribute("aria-live", "polite");
    list.parentNode.insertBefore(copyStatus, list.nextSibling);
    var generation = 0, timer = null, current = null, shown = 0;

    function say(text) { statusNode.textContent = text; }

    function updateUrl(query) {
      var params = new URLSearchParams(window.location.search);
      if (query) { params.set("q", query); } else { params.delete("q"); }
      if (archives.checked) { params.set("archives", "1"); } else { params.delete("archives"); }
      var search = params.toString();
      window.history.replaceState(null, "", window.location.pathname + (search ? "?" + search : ""));
    }

    function showMore(run) {
      return results(shards, current, shown, PAGE_SIZE).then(function (page) {
        if (run !== generation) { return; }
        page.forEach(function (result) { list.appendChild(resultItem(result, copyStatus)); });
        shown += page.length;
        more.hidden = shown >= current.hits.length;
        form.setAttribute("data-requete", current.query);
        form.setAttribute("data-etat", "pret");
      });
    }

    function run(typing) {
      var query = input.value;
      var mine = ++generation;
      form.setAttribute("data-etat", "recherche");
      updateUrl(query.trim());
      if (!query.trim()) {
        list.textContent = "";
        list.hidden = true;
        more.hidden = true;
        say("");
        form.setAttribute("data-requete", "");
        form.setAttribute("data-etat", "pret");
        return Promise.resolve();
      }
      // While typing, a last word not followed by a blank may be unfinished.
      typing = typing && /[\p{L}\p{N}]$/u.test(query);
      return search(shards, query, { includeArchived: archives.checked, typing: typing }).then(function (found) {
        if (mine !== generation) { return; }
        current = found;
        shown = 0;
        list.textContent = "";
        list.hidden = !found.hits.length;
        if (found.error) {
          say(found.error);
        } else if (!found.hits.length) {
          say("Aucune formation ne correspond à « " + query.trim() + " ».");
        } else {
          var text = (found.partial ? "Au moins " : "") + plural(found.hits.length, "formation trouvée", "formations trouvées");
          if (found.mode === "prefix") { text += " (début de mot)"; }
          if (found.mode === "fuzzy") { text += " (orthographe approchée)"; }
          say(text + ".");
        }
        return showMore(mine);
      }).catch(function (error) {
        if (mine !== generation) { return; }
        say("La recherche a échoué (" + error.message + "). Réessayez dans un instant.");
        form.setAttribute("data-etat", "erreur");
      });
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { run(true); }, DEBOUNCE_MS);
    });
    archives.addEventListener("change", function () { clearTimeout(timer); run(false); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearTimeout(timer);
      run(false);
    });
    more.addEventListener("click", function () {
      var first = list.children.length, mine = generation, wanted = shown + PAGE_SIZE;
      var ready = Promise.resolve();
      if (current.partial && current.need < wanted) {
        // Make sure of the next results too: fetch more pages of the terms if needed.
        ready = search(shards, current.query, { includeArchived: current.includeArchived, need: wanted })
          .then(function (found) { if (mine === generation) { current = found; } });
      }
      ready.then(function () { return showMore(mine); }).then(function () {
        var next = list.children[first];
        var link = next && next.querySelector("a");
        if (link) { link.focus(); }
      });
    });

    var params = new URLSearchParams(window.location.search);
    input.value = params.get("q") || "";
    archives.checked = params.get("archives") === "1";
    form.setAttribute("data-etat", "pret");
    if (input.value.trim()) { run(false); }
    window.CatalogueRecherche.page = { run: run, shards: shards, state: function () { return current; } };
  }

  window.CatalogueRecherche = {
    Analysis: Analysis,
    Shards: Shards,
    search: search,
    results: results,
    normaliseNumber: normaliseNumber,
    roundScore: roundScore,
    crc32: crc32,
    canonical: canonical,
    leafOf: leafOf,
    leafFile: leafFile,
    pageFile: pageFile,
    decodeSet: decodeSet
  };

  var form = document.querySelector("form[data-recherche]");
  if (form) { start(form); }
}());
