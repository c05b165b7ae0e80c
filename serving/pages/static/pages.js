// The little JavaScript the pages use (no library): township options follow the chosen county,
// wide month tables open at the latest month, and the print button.
(function () {
  var county = document.getElementById("county");
  var town = document.getElementById("township");
  function sync() {
    if (!county || !town) return;
    var c = county.value;
    Array.prototype.forEach.call(town.options, function (o) {
      if (!o.value) return;
      var show = !c || o.getAttribute("data-county") === c;
      o.hidden = !show;
      if (!show && o.selected) town.value = "";
    });
  }
  if (county) county.addEventListener("change", sync);
  // A township chosen under "all counties" brings its county along: names such as 城关镇 repeat.
  if (town) town.addEventListener("change", function () {
    var o = town.options[town.selectedIndex];
    if (county && o && o.value && !county.value) county.value = o.getAttribute("data-county");
  });
  sync();

  Array.prototype.forEach.call(document.querySelectorAll("[data-scroll-end]"), function (el) {
    el.scrollLeft = el.scrollWidth;
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (el) {
    el.addEventListener("click", function () { window.print(); });
  });
})();
