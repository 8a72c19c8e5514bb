// Wide figures on a narrow screen. A figure drawn 860 px wide, scaled down to a phone's
// 375 px, sets its text at about 5 px. So every SVG image wider than FIGURE_MIN_PX is put in
// a box of its own (div.figure-scroll); on a narrow screen (figures.css) the image keeps a
// readable width and the box scrolls sideways, while the page itself does not. The
// step-through figures have their own box (stepper.js).
(function () {
    "use strict";
    var FIGURE_MIN_PX = 600;
    function wrap(img) {
        if (img.closest("figure.stepper") || img.closest(".figure-scroll")) {
            return;
        }
        if (!/\.svg$/i.test(img.getAttribute("src") || "") || img.naturalWidth <= FIGURE_MIN_PX) {
            return;
        }
        var box = document.createElement("div");
        box.className = "figure-scroll";
        img.parentNode.insertBefore(box, img);
        box.appendChild(img);
    }
    function start() {
        Array.prototype.forEach.call(document.querySelectorAll("main img"), function (img) {
            if (img.complete && img.naturalWidth > 0) {
                wrap(img);
            } else {
                img.addEventListener("load", function () { wrap(img); });
            }
        });
    }
    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
})();
