// Live password-policy hints on the sign-up form. The server checks the same rules.
(function () {
  "use strict";
  var input = document.querySelector('form input[name="password"][autocomplete="new-password"]');
  var list = document.getElementById("policy");
  if (!input || !list) return;

  var classes = {
    lower: /[a-z]/, upper: /[A-Z]/, digit: /[0-9]/, special: /[^A-Za-z0-9]/
  };

  function check(rule, value) {
    var format = JSON.parse(rule.getAttribute("data-format") || "[]");
    switch (rule.getAttribute("data-code")) {
      case "lengthAtLeast":
        return value.length >= format[0];
      case "containsAtLeast":
        var met = 0;
        rule.querySelectorAll("[data-class]").forEach(function (item) {
          var ok = classes[item.getAttribute("data-class")].test(value);
          item.classList.toggle("met", ok);
          if (ok) met += 1;
        });
        return format[1] === 3 ? met === 3 : met >= format[0];
      case "identicalChars":
        return !/(.)\1\1/.test(value);
      default:
        return true;
    }
  }

  function update() {
    list.querySelectorAll(":scope > li").forEach(function (rule) {
      rule.classList.toggle("met", check(rule, input.value));
    });
  }
  input.addEventListener("input", update);
  update();
})();
