# A Perl workload for the preload tests: hashes whose values grow by appending, arrays of
# arrays spliced out of the middle, deleted keys, sorting and joining. Perl allocates all of
# it through malloc. Prints checksums, so a lost or corrupted byte changes the output.
use strict;
use warnings;

my (%h, @rows);
for my $i (1 .. 150_000) {
    $h{"k" . ($i * 31 % 20_000)} .= chr(97 + $i % 26) x ($i % 97);
    push @rows, [ map { $_ * $i } 1 .. ($i % 20) ];
    splice(@rows, $i % 3000, 600) if @rows > 3000;
    delete $h{"k" . ($i % 7000)} if $i % 3 == 0;
}
my $len = 0;
$len += length($h{$_}) for keys %h;
my $cells = 0;
$cells += scalar(@$_) for @rows;
my @top = (sort { length($h{$b}) <=> length($h{$a}) || $a cmp $b } keys %h)[0 .. 9];
print "keys ", scalar(keys %h), " bytes $len rows ", scalar(@rows), " cells $cells\n";
print join(",", map { "$_=" . length($h{$_}) } @top), "\n";
